/**
 * A progress bar with rate and ETA on stderr. On a terminal it redraws one line;
 * elsewhere (CI, notebooks, pipes) it prints a plain line at most every few
 * seconds so logs stay short.
 */

export interface ProgressOptions {
  /** Label printed before the bar. */
  label: string;
  /** Total number of units. */
  total: number;
  /** Unit name for the rate, e.g. `img` or `step`. */
  unit?: string;
  /** Where to write; defaults to process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Silences all output (tests). */
  quiet?: boolean;
  /** Seconds between plain-line updates when not a TTY. */
  plainEverySec?: number;
}

function fmtTime(sec: number): string {
  if (!Number.isFinite(sec)) return '--:--';
  const s = Math.max(0, Math.round(sec));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mmss = `${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}`;
  return h > 0 ? `${h}:${mmss}` : mmss;
}

export class Progress {
  private done = 0;
  private readonly t0 = performance.now();
  private lastDraw = 0;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private suffix = '';

  constructor(private readonly opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
  }

  /** Advances by `n` units; `note` (e.g. the current loss) is shown after the bar. */
  tick(n = 1, note?: string): void {
    this.done += n;
    if (note !== undefined) this.suffix = note;
    const now = performance.now();
    const every = this.tty ? 100 : (this.opts.plainEverySec ?? 10) * 1000;
    if (this.done >= this.opts.total || now - this.lastDraw >= every) {
      this.lastDraw = now;
      this.draw(now);
    }
  }

  /** Final line with total time; returns elapsed seconds. */
  finish(note?: string): number {
    if (note !== undefined) this.suffix = note;
    const sec = (performance.now() - this.t0) / 1000;
    if (!this.opts.quiet) {
      if (this.tty) this.stream.write('\r\x1b[2K');
      this.stream.write(`${this.opts.label}: ${this.done}/${this.opts.total} ${this.opts.unit ?? 'it'} in ${fmtTime(sec)}${this.suffix ? ` ${this.suffix}` : ''}\n`);
    }
    return sec;
  }

  private draw(now: number): void {
    if (this.opts.quiet) return;
    const { total, unit = 'it', label } = this.opts;
    const sec = (now - this.t0) / 1000;
    const rate = this.done / Math.max(sec, 1e-9);
    const eta = (total - this.done) / rate;
    const frac = Math.min(1, this.done / Math.max(total, 1));
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const rateText = rate >= 1 ? `${rate.toFixed(1)} ${unit}/s` : `${(1 / Math.max(rate, 1e-9)).toFixed(1)} s/${unit}`;
    const line = `${label} [${bar}] ${this.done}/${total} ${rateText} ETA ${fmtTime(eta)}${this.suffix ? ` ${this.suffix}` : ''}`;
    if (this.tty) this.stream.write(`\r\x1b[2K${line}`);
    else this.stream.write(`${line}\n`);
  }
}
