// Terminal and stdin helpers shared by commands that read input (load, login, prune).

/** Reads all of stdin as text (for --password-stdin). */
export async function readStdinText(stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Writes a question and reads one line of stdin. An empty or closed stdin answers "",
 * so a non-interactive run never hangs on a prompt.
 */
export function promptLine(out: NodeJS.WritableStream, question: string, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  out.write(question);
  return new Promise((resolve) => {
    let text = '';
    const finish = (): void => {
      stdin.off('data', onData);
      stdin.off('end', finish);
      stdin.off('error', finish);
      stdin.pause();
      resolve(text.split(/\r?\n/)[0] ?? '');
    };
    const onData = (chunk: Buffer | string): void => {
      text += chunk.toString();
      if (text.includes('\n')) finish();
    };
    stdin.on('data', onData);
    stdin.once('end', finish);
    stdin.once('error', finish);
    stdin.resume();
  });
}

/** Reads a line from a terminal without echoing it (passwords). */
export function promptHidden(out: NodeJS.WritableStream, question: string, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (!stdin.isTTY) return promptLine(out, question, stdin);
  out.write(question);
  return new Promise((resolve, reject) => {
    let text = '';
    stdin.setRawMode(true);
    const done = (result: string | Error): void => {
      stdin.setRawMode(false);
      stdin.off('data', onData);
      stdin.pause();
      out.write('\n');
      if (result instanceof Error) reject(result); else resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(text);
        if (ch === '\u0003') return done(new Error('interrupted'));
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
        else text += ch;
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

/** True for a stream attached to a terminal. */
export function isTerminal(stream: NodeJS.WritableStream | NodeJS.ReadableStream): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}
