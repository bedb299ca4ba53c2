import assert from "node:assert/strict";
import fc from "fast-check";
import { INVALID_BYTE, Utf8DecoderStream } from "../../ingest/utf8_decoder_stream.ts";

async function decode(chunks: Uint8Array[], stream: TransformStream<Uint8Array, string>) {
  let out = "";
  for await (const text of ReadableStream.from(chunks).pipeThrough(stream)) out += text;
  return out;
}

function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...at, bytes.length]) {
    chunks.push(bytes.subarray(from, cut));
    from = cut;
  }
  return chunks;
}

Deno.test("Utf8DecoderStream decodes as TextDecoderStream, with INVALID_BYTE where it puts U+FFFD", async () => {
  // Bytes near the edges of UTF-8's ranges, where decoders err.
  const byte = fc.constantFrom(
    0x00,
    0x41,
    0x7f,
    0x80,
    0x8f,
    0x90,
    0x9f,
    0xa0,
    0xbf,
    0xc0,
    0xc1,
    0xc2,
    0xdf,
    0xe0,
    0xed,
    0xef,
    0xbb,
    0xf0,
    0xf4,
    0xf5,
    0xff,
  );
  await fc.assert(
    fc.asyncProperty(fc.array(byte, { maxLength: 40 }), fc.array(fc.nat()), async (b, cuts) => {
      const bytes = new Uint8Array(b);
      const chunks = split(bytes, cuts);
      const expected = await decode(chunks, new TextDecoderStream());
      const actual = await decode(chunks, new Utf8DecoderStream());
      assert.equal(actual.replaceAll(INVALID_BYTE, "\uFFFD"), expected);
      // No byte here makes a literal U+FFFD (EF BF BD), so every one is a replacement.
      assert.equal(actual.isWellFormed(), !expected.includes("\uFFFD"));
    }),
    { numRuns: 2_000 },
  );
});

Deno.test("Utf8DecoderStream keeps a literal U+FFFD apart from a replaced byte", async () => {
  const bytes = new Uint8Array([0x61, 0xef, 0xbf, 0xbd, 0x62, 0xff, 0x63]);
  assert.equal(await decode([bytes], new Utf8DecoderStream()), `a\uFFFDb${INVALID_BYTE}c`);
});
