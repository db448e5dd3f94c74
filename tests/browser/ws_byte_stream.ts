/**
 * A WebSocket as the byte stream `relaySignaling` runs over, in the page and
 * in Deno alike (only the WebSocket API is used): binary frames carry the
 * bytes, and an empty binary frame ends the sender's half, since a WebSocket
 * has no half-close of its own. Once both halves have ended the socket is
 * closed with 1000; aborting the writable closes it with 4000, which the
 * other side reads as a reset.
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

import type { SignalingByteStream } from "../../signaling/relay.ts";

/** A WebSocket as a byte stream, and when its socket closed. */
export interface WebSocketByteStream extends SignalingByteStream {
  /**
   * Resolves with the close code once the socket has closed: 1000 after
   * both halves ended, 4000 after a reset. Never rejects.
   */
  readonly closed: Promise<number>;
}

/** The close code of a reset. */
const RESET = 4000;

/**
 * Wraps `socket` (connecting or open). At most `maxUnread` bytes received
 * and not yet read are held; a peer that sends more gets the socket closed
 * with 1009 and the readable fails.
 */
export function webSocketByteStream(
  socket: WebSocket,
  maxUnread = 1024 * 1024,
): WebSocketByteStream {
  socket.binaryType = "arraybuffer";
  let readEnded = false;
  let writeEnded = false;
  let readController!: ReadableStreamDefaultController<Uint8Array>;
  let writeController!: WritableStreamDefaultController;
  const closed = new Promise<number>((resolve) =>
    socket.addEventListener("close", (event) => resolve(event.code), {
      once: true,
    })
  );
  const opened = new Promise<void>((resolve, reject) => {
    if (socket.readyState === WebSocket.OPEN) return resolve();
    socket.addEventListener("open", () => resolve(), { once: true });
    closed.then(() =>
      reject(new Error("the WebSocket closed before it opened"))
    );
  });
  opened.catch(() => {});
  const closeWhenDone = () => {
    if (readEnded && writeEnded && socket.readyState === WebSocket.OPEN) {
      socket.close(1000);
    }
  };
  const reset = (code: number, why: string) => {
    readEnded = writeEnded = true;
    if (socket.readyState <= WebSocket.OPEN) socket.close(code, why);
  };

  const readable = new ReadableStream<Uint8Array>({
    start: (controller) => void (readController = controller),
    cancel: () => {
      readEnded = true;
      closeWhenDone();
    },
  }, { highWaterMark: maxUnread, size: (chunk) => chunk.byteLength });

  const writable = new WritableStream<Uint8Array>({
    start: (controller) => {
      writeController = controller;
      return opened;
    },
    write: (chunk) => {
      if (socket.readyState !== WebSocket.OPEN) {
        throw new Error("the WebSocket is closed");
      }
      // An empty frame would end our half.
      if (chunk.byteLength > 0) socket.send(chunk);
    },
    close: () => {
      socket.send(new Uint8Array(0));
      writeEnded = true;
      closeWhenDone();
    },
    abort: () => reset(RESET, "reset"),
  });

  socket.addEventListener("message", (event: MessageEvent) => {
    if (readEnded) return;
    if (!(event.data instanceof ArrayBuffer)) {
      readController.error(new Error("a text frame on a byte stream"));
      return reset(1003, "binary only");
    }
    if (event.data.byteLength === 0) {
      readEnded = true;
      readController.close();
      return closeWhenDone();
    }
    if (event.data.byteLength > (readController.desiredSize ?? 0)) {
      readController.error(new Error(`over ${maxUnread} bytes unread`));
      return reset(1009, "too much unread");
    }
    readController.enqueue(new Uint8Array(event.data));
  });
  socket.addEventListener("close", (event: CloseEvent) => {
    const error = new Error(
      `the WebSocket closed (${event.code}${
        event.code === RESET ? ", reset" : ""
      })`,
    );
    if (!readEnded) readController.error(error);
    if (!writeEnded) writeController.error(error);
    readEnded = writeEnded = true;
  }, { once: true });

  return { readable, writable, closed };
}
