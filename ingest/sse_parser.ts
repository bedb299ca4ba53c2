/** One dispatched server-sent event. */
export interface SseEvent {
  /** The `event:` field, or "message" when the block had none (or an empty one). */
  type: string;
  /** The `data:` lines of the block joined with "\n". */
  data: string;
  /** The last event id when the event was dispatched ("" for none). */
  lastEventId: string;
  /**
   * Set when the block outgrew `maxEventChars`: its size in characters. Its
   * data is then an excerpt (the first `EXCERPT_CHARS`), the rest was dropped
   * as it arrived.
   */
  tooLarge?: number;
  /**
   * Set when the block's `id:` was longer than `MAX_ID_BYTES` UTF-8 bytes: an
   * excerpt of it. Such an id is not adopted: `lastEventId` stays the previous
   * one, so the resume point never carries it.
   */
  longId?: string;
}

/** The longest event id adopted, in UTF-8 bytes: it fits a `Last-Event-ID` header anywhere. */
export const MAX_ID_BYTES = 1024;
/** How much of an oversized event, or of an over-long id, is kept. */
export const EXCERPT_CHARS = 1024;

const LF = 10;
const CR = 13;
const SPACE = 32;
const ZERO = 48;
const NINE = 57;
// In a block being skipped, a line longer than this cannot be an id, event or
// retry line worth reading, so it is counted and dropped as it arrives.
const SKIP_LINE_CHARS = MAX_ID_BYTES + 16;
const encoder = new TextEncoder();

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
 * Memory is bounded whatever arrives: a block whose non-comment lines, plus any
 * pending partial line, exceed `maxEventChars` UTF-16 code units (line terminators
 * not counted) is skipped from then on: its data is dropped as it arrives, only an
 * excerpt, its size and its id, event and retry fields are kept, and its end
 * dispatches an event marked `tooLarge` (with or without data lines), so that the
 * stream and its ids go on past it. An `id:` longer than `MAX_ID_BYTES` is not
 * adopted; the block's event is marked `longId`.
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
  // Set once the block outgrew the limit: its data is dropped from then on.
  #skipping = false;
  #excerpt = "";
  // The current line of a skipped block is too long to be read: count it only.
  #longLine = false;
  #longId: string | undefined = undefined;
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
        if (this.#longLine) {
          this.#blockChars += len - pos;
          return events;
        }
        this.#partial += pos === 0 ? chunk : chunk.slice(pos);
        if (!this.#skipping && this.#blockChars + this.#partial.length > this.#max) {
          this.#skip(this.#partial.replace(/^data: ?/, "").slice(0, EXCERPT_CHARS));
        }
        if (this.#skipping && this.#partial.length > SKIP_LINE_CHARS) {
          this.#blockChars += this.#partial.length;
          this.#partial = "";
          this.#longLine = true;
        }
        return events;
      }
      if (this.#longLine) {
        this.#blockChars += end - pos;
        this.#longLine = false;
      } else if (this.#partial === "") {
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

  /** From now on the pending block is skipped; `line` is its pending line, if any. */
  #skip(line = "") {
    this.#skipping = true;
    const data = this.#hasData ? `${this.#data}\n${line}` : line;
    this.#excerpt = data.slice(0, EXCERPT_CHARS);
    this.#data = "";
  }

  /** Processes the line s[start, end); `colon` is its first colon, or -1. */
  #line(s: string, start: number, end: number, colon: number, events: SseEvent[]): void {
    if (start === end) {
      this.#lastEventId = this.#idBuffer;
      if (this.#skipping) {
        events.push({
          type: this.#type || "message",
          data: this.#excerpt,
          lastEventId: this.#idBuffer,
          tooLarge: this.#blockChars,
          ...(this.#longId === undefined ? {} : { longId: this.#longId }),
        });
      } else if (this.#hasData) {
        const event: SseEvent = {
          type: this.#type || "message",
          data: this.#data,
          lastEventId: this.#idBuffer,
        };
        if (this.#longId !== undefined) event.longId = this.#longId;
        events.push(event);
      }
      this.#data = "";
      this.#hasData = false;
      this.#skipping = false;
      this.#excerpt = "";
      this.#longId = undefined;
      this.#type = "";
      this.#blockChars = 0;
      return;
    }
    if (colon === start) return; // a comment
    let nameEnd = end;
    let value = end;
    if (colon !== -1) {
      nameEnd = colon;
      value = colon + 1;
      if (value < end && s.charCodeAt(value) === SPACE) value++;
    }
    this.#blockChars += end - start;
    if (!this.#skipping && this.#blockChars > this.#max) {
      const data = nameEnd - start === 4 && s.startsWith("data", start);
      this.#skip(data ? s.slice(value, Math.min(end, value + EXCERPT_CHARS)) : "");
    }
    switch (nameEnd - start) {
      case 4:
        if (s.startsWith("data", start)) {
          if (this.#skipping) break;
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
          if (v.includes("\0")) break;
          // A UTF-16 code unit is 1 to 3 UTF-8 bytes: only some lengths need counting.
          if (
            v.length > MAX_ID_BYTES ||
            (v.length > MAX_ID_BYTES / 3 && encoder.encode(v).length > MAX_ID_BYTES)
          ) {
            this.#longId = v.slice(0, EXCERPT_CHARS);
          } else {
            this.#idBuffer = v;
            this.#longId = undefined;
          }
        }
        break;
    }
  }
}
