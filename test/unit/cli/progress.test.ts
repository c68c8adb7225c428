import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import { ProgressPrinter, progressBar, messageError, type JsonMessage } from '../../../src/cli/progress';

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  return { stream: new Writable({ write(chunk, _enc, cb) { text += chunk; cb(); } }), text: () => text };
}

/** Replays text with the ANSI moves the printer uses and returns the visible screen lines. */
function screen(output: string): string[] {
  const lines: string[] = [''];
  let row = 0;
  let col = 0;
  const put = (ch: string): void => {
    const line = lines[row] ?? '';
    lines[row] = line.slice(0, col).padEnd(col) + ch + line.slice(col + 1);
    col++;
  };
  for (let i = 0; i < output.length; i++) {
    const ch = output[i]!;
    if (ch === '\x1b') {
      const m = /^\x1b\[(\d*)([ABK])/.exec(output.slice(i));
      if (!m) throw new Error(`unexpected escape at ${i}`);
      const n = Number(m[1] || 1);
      if (m[2] === 'A') row = Math.max(0, row - n);
      else if (m[2] === 'B') row += n;
      else lines[row] = '';
      while (lines.length <= row) lines.push('');
      i += m[0].length - 1;
    } else if (ch === '\n') {
      row++; col = 0;
      while (lines.length <= row) lines.push('');
    } else if (ch === '\r') {
      col = 0;
    } else {
      put(ch);
    }
  }
  return lines.map((l) => l.trimEnd()).filter((l, i, all) => l !== '' || i < all.length - 1);
}

const PULL: JsonMessage[] = [
  { status: 'Pulling from library/busybox', id: 'latest' },
  { status: 'Pulling fs layer', id: 'aaaaaaaaaaaa' },
  { status: 'Pulling fs layer', id: 'bbbbbbbbbbbb' },
  { status: 'Downloading', id: 'aaaaaaaaaaaa', progressDetail: { current: 1_200_000, total: 3_400_000 }, progress: '[==>  ] 1.2MB/3.4MB' },
  { status: 'Downloading', id: 'bbbbbbbbbbbb', progressDetail: { current: 10, total: 100 } },
  { status: 'Downloading', id: 'aaaaaaaaaaaa', progressDetail: { current: 3_400_000, total: 3_400_000 } },
  { status: 'Download complete', id: 'aaaaaaaaaaaa' },
  { status: 'Extracting', id: 'aaaaaaaaaaaa', progressDetail: { current: 1000, total: 2000 } },
  { status: 'Pull complete', id: 'aaaaaaaaaaaa' },
  { status: 'Download complete', id: 'bbbbbbbbbbbb' },
  { status: 'Pull complete', id: 'bbbbbbbbbbbb' },
  { status: 'Digest: sha256:1234' },
  { status: 'Status: Downloaded newer image for busybox:latest' },
];

test('plain output: one line per status change, no bars, no escapes', () => {
  const out = sink();
  const printer = new ProgressPrinter(out.stream, false);
  for (const msg of PULL) printer.print(msg);
  assert.not.match(out.text(), /\x1b/);
  assert.equal(out.text().split('\n'), [
    'latest: Pulling from library/busybox',
    'aaaaaaaaaaaa: Pulling fs layer',
    'bbbbbbbbbbbb: Pulling fs layer',
    'aaaaaaaaaaaa: Download complete',
    'aaaaaaaaaaaa: Pull complete',
    'bbbbbbbbbbbb: Download complete',
    'bbbbbbbbbbbb: Pull complete',
    'Digest: sha256:1234',
    'Status: Downloaded newer image for busybox:latest',
    '',
  ]);
});

test('terminal output: each layer keeps one line, redrawn in place', () => {
  const out = sink();
  const printer = new ProgressPrinter(out.stream, true, 200);
  for (const msg of PULL.slice(0, 5)) printer.print(msg);
  const during = screen(out.text());
  assert.is(during.length, 3);
  assert.is(during[0], 'latest: Pulling from library/busybox');
  assert.match(during[1]!, /^aaaaaaaaaaaa: Downloading \[={17}> +\]    1\.2MB\/3\.4MB$/);
  assert.match(during[2]!, /^bbbbbbbbbbbb: Downloading \[=====> +\]      10B\/100B$/);
  for (const msg of PULL.slice(5)) printer.print(msg);
  assert.equal(screen(out.text()), [
    'latest: Pulling from library/busybox',
    'aaaaaaaaaaaa: Pull complete',
    'bbbbbbbbbbbb: Pull complete',
    'Digest: sha256:1234',
    'Status: Downloaded newer image for busybox:latest',
  ]);
  assert.match(out.text(), /\x1b\[2A\x1b\[2K\r/);
});

test('terminal output: a new block after a plain line does not move older lines', () => {
  const out = sink();
  const printer = new ProgressPrinter(out.stream, true, 200);
  printer.print({ status: 'Pulling fs layer', id: 'aaaaaaaaaaaa' });
  printer.print({ status: 'Digest: x' });
  printer.print({ status: 'Pulling fs layer', id: 'aaaaaaaaaaaa' });
  printer.print({ status: 'Pull complete', id: 'aaaaaaaaaaaa' });
  assert.equal(screen(out.text()), ['aaaaaaaaaaaa: Pulling fs layer', 'Digest: x', 'aaaaaaaaaaaa: Pull complete']);
});

test('narrow terminals get the numbers without the bar, like docker', () => {
  const out = sink();
  new ProgressPrinter(out.stream, true, 80).print({ status: 'Downloading', id: 'a', progressDetail: { current: 5, total: 10 } });
  assert.equal(screen(out.text()), ['a: Downloading       5B/10B']);
});

test('bar shape', () => {
  assert.is(progressBar(0, 100), `[>${' '.repeat(50)}]       0B/100B`);
  assert.is(progressBar(100, 100), `[${'='.repeat(50)}>]     100B/100B`);
  assert.is(progressBar(1_234_567, undefined), ' 1.235MB');
  assert.is(progressBar(5, 10, false), '      5B/10B');
});

test('stream lines (load) are printed as they are', () => {
  const out = sink();
  const printer = new ProgressPrinter(out.stream, false);
  printer.print({ stream: 'Loaded image: busybox:latest\n' });
  assert.is(out.text(), 'Loaded image: busybox:latest\n');
});

test('error messages carry the most precise code given', () => {
  assert.is(messageError({ status: 'x' }), undefined);
  const plain = messageError({ errorDetail: { message: 'boom' }, error: 'boom' })!;
  assert.is(plain.message, 'boom');
  assert.is(plain.code, 'EINTERNAL');
  assert.is(messageError({ errorDetail: { message: 'denied', code: 401 } })!.code, 'EAUTH');
  assert.is(messageError({ errorDetail: { message: 'bad blob', code: 500, berthCode: 'EDIGEST' } })!.code, 'EDIGEST');
  assert.is(messageError({ error: 'old style' })!.message, 'old style');
});

test.run();
