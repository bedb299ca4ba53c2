/**
 * What a byte that is not UTF-8 decodes to: a lone low surrogate. Decoding valid
 * UTF-8 never yields one, so a string that is not well-formed (`isWellFormed()`)
 * had bytes replaced, where U+FFFD (what `TextDecoderStream` puts there) is also a
 * character a feed may send.
 */
export const INVALID_BYTE = "\uDC80";

/**
 * Decodes a UTF-8 byte stream as `TextDecoderStream` does (one BOM stripped, a
 * character split across chunks decoded whole, one replacement per maximal
 * invalid subpart as WHATWG's decoder counts them), except that invalid bytes
 * become {@linkcode INVALID_BYTE}, so that what was replaced stays visible.
 * Valid chunks take the native decoder's fast path.
 */
export class Utf8DecoderStream extends TransformStream<Uint8Array, string> {
  constructor() {
    const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    let carry: Uint8Array | undefined;
    let start = true;
    const decode = (bytes: Uint8Array, controller: TransformStreamDefaultController<string>) => {
      if (
        start && bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf
      ) {
        bytes = bytes.subarray(3);
      }
      if (bytes.length > 0) start = false;
      let text: string;
      try {
        text = fatal.decode(bytes);
      } catch {
        text = decodeReplacing(fatal, bytes);
      }
      if (text.length > 0) controller.enqueue(text);
    };
    super({
      transform(chunk, controller) {
        let bytes = chunk;
        if (carry) {
          bytes = new Uint8Array(carry.length + chunk.length);
          bytes.set(carry);
          bytes.set(chunk, carry.length);
          carry = undefined;
        }
        // Too few bytes for a BOM yet: wait for more.
        if (start && bytes.length < 3 && isPrefixOf(bytes, BOM)) {
          carry = bytes.slice();
          return;
        }
        const end = completeLength(bytes);
        if (end < bytes.length) carry = bytes.slice(end);
        decode(bytes.subarray(0, end), controller);
      },
      flush(controller) {
        if (carry) decode(carry, controller);
      },
    });
  }
}

const BOM = [0xef, 0xbb, 0xbf];

function isPrefixOf(bytes: Uint8Array, of: number[]): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== of[i]) return false;
  return true;
}

/** The length of `bytes` without a character its last bytes begin but do not finish. */
function completeLength(bytes: Uint8Array): number {
  const n = bytes.length;
  for (let i = n - 1; i >= 0 && i >= n - 3; i--) {
    const b = bytes[i];
    if (b < 0x80) return n;
    if (b >= 0xc0) {
      const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
      return n - i < need ? i : n;
    }
  }
  return n;
}

/**
 * The slow path, for bytes that are not all UTF-8: WHATWG's UTF-8 decoder, with
 * each error as INVALID_BYTE and each valid run decoded natively.
 */
function decodeReplacing(decoder: TextDecoder, bytes: Uint8Array): string {
  let out = "";
  let run = 0;
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    let need = 0;
    let lower = 0x80;
    let upper = 0xbf;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lower = 0xa0;
      if (b === 0xed) upper = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lower = 0x90;
      if (b === 0xf4) upper = 0x8f;
    }
    let j = i + 1;
    if (need > 0) {
      for (let k = 0; k < need; k++, j++) {
        const c = bytes[j];
        if (j >= bytes.length || c < (k === 0 ? lower : 0x80) || c > (k === 0 ? upper : 0xbf)) {
          break;
        }
      }
      if (j - i === need + 1) {
        i = j;
        continue;
      }
    }
    // An error: the bytes from i to j (exclusive) are one maximal invalid subpart.
    out += decoder.decode(bytes.subarray(run, i)) + INVALID_BYTE;
    i = run = j;
  }
  return out + decoder.decode(bytes.subarray(run));
}
