// Docker's human formats, shared by the CLI (tables), the engine (ps status text) and
// image progress: go-units' HumanSize and HumanDuration, Go's %g.

/** Go's %.<precision>g: shortest of fixed/exponent form, trailing zeros dropped. */
export function formatG(value: number, precision: number): string {
  if (value === 0) return '0';
  if (!Number.isFinite(value)) return String(value);
  const exp = Math.floor(Math.log10(Math.abs(Number(value.toPrecision(precision)))));
  if (exp < -4 || exp >= precision) {
    const [mantissa, e] = value.toExponential(precision - 1).split('e');
    const m = mantissa!.includes('.') ? mantissa!.replace(/\.?0+$/, '') : mantissa!;
    const n = Number(e);
    return `${m}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  const fixed = value.toFixed(Math.max(0, precision - 1 - exp));
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];

function scaled(size: number, base: number, units: string[], precision: number): string {
  let i = 0;
  while (size >= base && i < units.length - 1) { size /= base; i++; }
  return `${formatG(size, precision)}${units[i]}`;
}

/** Decimal size as `docker images` prints it: 4.26MB, 983kB, 1.2GB. */
export function humanSize(bytes: number, precision = 3): string {
  return scaled(bytes, 1000, DECIMAL_UNITS, precision);
}

/** Binary size as `docker info` prints memory: 1.944GiB. */
export function binarySize(bytes: number): string {
  return scaled(bytes, 1024, BINARY_UNITS, 4);
}

/** Docker's human duration: "Less than a second", "About a minute", "3 hours", "2 weeks". */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(seconds / 60);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.floor(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}
