/**
 * What this backend adds to werift's DTLS: knowing when its retransmission
 * timers are done, and a close_notify when it closes.
 *
 * Internal to the werift backend.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { RTCDtlsTransport } from "werift";
import type { DtlsSocket } from "./internals.ts";

/** DTLS record content types that carry handshake flights. */
const DTLS_HANDSHAKE = 22;
const DTLS_CHANGE_CIPHER_SPEC = 20;
/** DTLS record content type of an alert. */
const DTLS_ALERT = 21;
/** The close_notify alert: level warning (1), description close_notify (0). */
const CLOSE_NOTIFY = [1, 0];
/** A flight number past any real one, which ends werift's retransmit loops. */
const FLIGHT_STOPPED = 99;
/** werift's DTLS client waits this long before its first flight. */
const DTLS_CLIENT_DELAY_MS = 100;
/** werift waits `FLIGHT_WAIT_MS * (n + 1)` after the n-th send of a flight. */
const FLIGHT_WAIT_MS = 500;
/** werift paces ICE connectivity checks with a 20 ms sleep that close() does not cut short. */
const ICE_PACING_MS = 20;
/** Slack for timer jitter when waiting for werift's last timer to fire. */
const TIMER_SLACK_MS = 25;

/**
 * Knows when werift's DTLS retransmission timers (and its ICE check pacing
 * sleep) have all fired, so a closed connection can be reported stopped only
 * then.
 *
 * werift sends each handshake flight and then sleeps `500 ms * (n + 1)`
 * (n = retransmissions so far) in a promise that nothing can cancel, even
 * after the handshake has finished, and a closed connection does not stop
 * the loop: a flight cut off mid-handshake would retransmit for 33 s. This
 * watch sees every flight as it is sent, so it knows when the last sleep
 * ends; on {@linkcode FlightWatch.stop} it moves each socket's flight counter
 * past the end, so every loop finishes at its next wake-up.
 */
export class FlightWatch {
  #deadline = 0;
  #stopped = false;
  readonly #transports = new WeakSet<RTCDtlsTransport>();
  readonly #sockets = new Set<DtlsSocket>();

  /** Starts watching `transport`; `false` if it already was. */
  watch(transport: RTCDtlsTransport): boolean {
    if (this.#transports.has(transport)) return false;
    this.#transports.add(transport);
    if (transport.state === "new") {
      // werift assigns `dtls` right after announcing "connecting", in the
      // same task, and sends its first flight a task later at the earliest.
      transport.onStateChange.subscribe((state) => {
        if (state === "connecting") {
          queueMicrotask(() => this.#hook(transport));
        }
      });
    } else {
      this.#hook(transport);
    }
    return true;
  }

  /** The connection is closing: end every retransmit loop at its next wake-up. */
  stop(): void {
    this.#stopped = true;
    this.#extend(ICE_PACING_MS);
    for (const socket of this.#sockets) socket.dtls.flight = FLIGHT_STOPPED;
  }

  /** Resolves once the last timer werift may still have running has fired. */
  async settled(): Promise<void> {
    for (;;) {
      const wait = this.#deadline - performance.now();
      if (wait <= 0) return;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  #hook(transport: RTCDtlsTransport): void {
    const socket = transport.dtls as unknown as DtlsSocket | undefined;
    if (!socket || this.#sockets.has(socket)) return;
    this.#sockets.add(socket);
    this.#extend(DTLS_CLIENT_DELAY_MS);
    const sends = new Map<Uint8Array, number>();
    const context = socket.transport;
    const send = context.send;
    context.send = (data, address) => {
      const type = data[0];
      if (type === DTLS_HANDSHAKE || type === DTLS_CHANGE_CIPHER_SPEC) {
        // werift passes the very same buffer again when it retransmits.
        const n = sends.get(data) ?? 0;
        sends.set(data, n + 1);
        this.#extend(FLIGHT_WAIT_MS * (n + 1));
        // A flight that starts after stop() (the client's first, delayed
        // 100 ms) resets the counter; put it back past the end.
        if (this.#stopped) socket.dtls.flight = FLIGHT_STOPPED;
      }
      return send(data, address);
    };
    if (this.#stopped) socket.dtls.flight = FLIGHT_STOPPED;
  }

  #extend(ms: number): void {
    this.#deadline = Math.max(
      this.#deadline,
      performance.now() + ms + TIMER_SLACK_MS,
    );
  }
}

/**
 * Makes werift say goodbye in DTLS when it stops `transport`.
 *
 * werift closes by sending an SCTP ABORT and closing its socket, with no
 * DTLS close_notify. A werift peer acts on the ABORT, but libdatachannel
 * does not always (it may close the channels yet leave its connection
 * "connected" until ICE consent expires, 30 s later). A close_notify is what
 * every stack acts on at once. werift can only send application data, so
 * the record it builds is relabelled as an alert just before it is
 * encrypted, which is where the record type enters the AEAD.
 */
export function closeNotifyOnStop(transport: RTCDtlsTransport): void {
  const stop = transport.stop;
  transport.stop = async () => {
    const socket = transport.dtls as unknown as DtlsSocket | undefined;
    if (socket && transport.state === "connected") {
      const cipher = socket.cipher;
      const encrypt = cipher.encryptPacket;
      cipher.encryptPacket = (packet) => {
        packet.recordLayerHeader.contentType = DTLS_ALERT;
        return encrypt.call(cipher, packet);
      };
      try {
        // `send` builds and encrypts the record before its first await.
        socket.send(Buffer.from(CLOSE_NOTIFY)).catch(() => {});
      } finally {
        cipher.encryptPacket = encrypt;
      }
      // Let the datagram leave before werift closes the socket under it.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    return stop.call(transport);
  };
}
