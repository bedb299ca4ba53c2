/** One dispatched server-sent event. */
export interface SseEvent {
  /** The `event:` field, or "message" when the block had none (or an empty one). */
  type: string;
  /** The `data:` lines of the block joined with "\n". */
  data: string;
  /** The last event id when the event was dispatched ("" for none). */
  lastEventId: string;
}

/** Thrown by {@linkcode SseParser.push} when one event block outgrows the limit. */
export class SseEventTooLargeError extends RangeError {
  /** The events the chunk completed before the oversized block, in order. */
  readonly events: SseEvent[];

  constructor(maxEventChars: number, events: SseEvent[]) {
    super(`Cannot parse SSE event: larger than ${maxEventChars} characters`);
    this.name = "SseEventTooLargeError";
    this.events = events;
  }
}

const LF = 10;
const CR = 13;
const SPACE = 32;
const ZERO = 48;
const NINE = 57;

/**
 * A WHATWG "event stream interpretation" of an already decoded stream: one parser per
 * connection. It strips no byte order mark, because decoding (`TextDecoderStream`)
 * already strips exactly one; a second one is part of the first field name.
 *
 * As the WHATWG EventSource's last event id string, {@linkcode SseParser.lastEventId}
 * changes only when a block ends with a blank line (with or without data), so the id
 * of a block cut off by the end of the stream is never taken. Unlike a fresh WHATWG
 * parse, a parser starts from the last event id it is given, so that ids carry over
 * reconnections.
 *
 * Memory is bounded: a block whose non-comment lines, plus any pending partial line,
 * exceed `maxEventChars` UTF-16 code units (line terminators not counted) makes
 * {@linkcode SseParser.push} throw {@linkcode SseEventTooLargeError}; the parser must
 * then be discarded.
 */
export class SseParser {
  #max: number;
  #lastEventId: string;
  #retry: number | undefined = undefined;
  // The pending block.
  #idBuffer: string;
  #type = "";
  #data = "";
  #hasData = false;
  #blockChars = 0;
  // A line split across chunks, and whether the previous chunk ended in CR (so a
  // leading LF in the next chunk is the second half of a CRLF).
  #partial = "";
  #skipLF = false;

  constructor(
    { maxEventChars, lastEventId = "" }: { maxEventChars: number; lastEventId?: string },
  ) {
    this.#max = maxEventChars;
    this.#lastEventId = lastEventId;
    this.#idBuffer = lastEventId;
  }

  /** The last event id after the complete blocks seen so far ("" for none). */
  get lastEventId(): string {
    return this.#lastEventId;
  }

  /** The reconnection time, in milliseconds, of the last valid `retry:` field seen. */
  get retry(): number | undefined {
    return this.#retry;
  }

  /** Parses a decoded chunk and returns the events it completed, in order. */
  push(chunk: string): SseEvent[] {
    const events: SseEvent[] = [];
    const len = chunk.length;
    let pos = 0;
    if (this.#skipLF && len > 0) {
      this.#skipLF = false;
      if (chunk.charCodeAt(0) === LF) pos = 1;
    }
    // Positions of the next LF, CR and colon at or after `pos` (-1: none left). Each is
    // searched for again only once `pos` has passed it, so a chunk is scanned in linear
    // time however its lines are terminated.
    let lf = chunk.indexOf("\n", pos);
    let cr = chunk.indexOf("\r", pos);
    let colon = chunk.indexOf(":", pos);
    while (pos < len) {
      if (lf !== -1 && lf < pos) lf = chunk.indexOf("\n", pos);
      if (cr !== -1 && cr < pos) cr = chunk.indexOf("\r", pos);
      const end = cr === -1 ? lf : lf === -1 ? cr : lf < cr ? lf : cr;
      if (end === -1) {
        this.#partial += pos === 0 ? chunk : chunk.slice(pos);
        if (this.#blockChars + this.#partial.length > this.#max) {
          throw new SseEventTooLargeError(this.#max, events);
        }
        return events;
      }
      if (this.#partial === "") {
        if (colon !== -1 && colon < pos) colon = chunk.indexOf(":", pos);
        this.#line(chunk, pos, end, colon !== -1 && colon < end ? colon : -1, events);
      } else {
        const line = this.#partial + chunk.slice(pos, end);
        this.#partial = "";
        this.#line(line, 0, line.length, line.indexOf(":"), events);
      }
      pos = end + 1;
      if (chunk.charCodeAt(end) === CR) {
        if (pos === len) this.#skipLF = true;
        else if (chunk.charCodeAt(pos) === LF) pos++;
      }
    }
    return events;
  }

  /** Processes the line s[start, end); `colon` is its first colon, or -1. */
  #line(s: string, start: number, end: number, colon: number, events: SseEvent[]): void {
    if (start === end) {
      this.#lastEventId = this.#idBuffer;
      if (this.#hasData) {
        events.push({
          type: this.#type || "message",
          data: this.#data,
          lastEventId: this.#idBuffer,
        });
        this.#data = "";
        this.#hasData = false;
      }
      this.#type = "";
      this.#blockChars = 0;
      return;
    }
    if (colon === start) return; // a comment
    this.#blockChars += end - start;
    if (this.#blockChars > this.#max) throw new SseEventTooLargeError(this.#max, events);
    let nameEnd = end;
    let value = end;
    if (colon !== -1) {
      nameEnd = colon;
      value = colon + 1;
      if (value < end && s.charCodeAt(value) === SPACE) value++;
    }
    switch (nameEnd - start) {
      case 4:
        if (s.startsWith("data", start)) {
          const v = s.slice(value, end);
          if (this.#hasData) this.#data += "\n" + v;
          else {
            this.#data = v;
            this.#hasData = true;
          }
        }
        break;
      case 5:
        if (s.startsWith("event", start)) {
          this.#type = s.slice(value, end);
        } else if (s.startsWith("retry", start) && value < end) {
          let n = 0;
          for (let i = value; i < end; i++) {
            const c = s.charCodeAt(i);
            if (c < ZERO || c > NINE) return;
            n = n * 10 + c - ZERO;
          }
          this.#retry = n;
        }
        break;
      case 2:
        if (s.startsWith("id", start)) {
          const v = s.slice(value, end);
          if (!v.includes("\0")) this.#idBuffer = v;
        }
        break;
    }
  }
}
