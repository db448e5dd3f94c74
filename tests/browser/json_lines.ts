/**
 * Newline-delimited JSON over a byte stream, the wire between the browser
 * test and its driver process.
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

/** Yields each line of `stream` parsed as JSON; blank lines are skipped. */
export async function* jsonLines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<unknown> {
  let buffered = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffered += text;
    let end: number;
    while ((end = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, end).trim();
      buffered = buffered.slice(end + 1);
      if (line !== "") yield JSON.parse(line);
    }
  }
  if (buffered.trim() !== "") yield JSON.parse(buffered);
}
