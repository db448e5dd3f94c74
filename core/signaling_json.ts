/**
 * The JSON form of a {@linkcode SignalingMessage}, for signalling channels
 * that carry JSON (the WebSocket rendezvous), and a strict reader for it.
 *
 * A candidate is the JSON of an `RTCIceCandidateInit`
 * (`candidate`, `sdpMid`, `sdpMLineIndex`, `usernameFragment`), as
 * `RTCIceCandidate.toJSON()` gives it, or `null` at the end of candidates. A
 * candidate whose `candidate` is `""` (a browser's end-of-generation) also
 * reads as `null`. Fields the reader does not know are ignored; fields it
 * knows must have their type.
 *
 * @example Round trip
 * ```ts
 * import {
 *   signalingMessageFromJson,
 *   signalingMessageToJson,
 * } from "./signaling_json.ts";
 * import { deepStrictEqual, throws } from "node:assert/strict";
 *
 * const message = {
 *   type: "candidate" as const,
 *   candidate: { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid: "0" },
 * };
 * const json = JSON.parse(JSON.stringify(signalingMessageToJson(message)));
 * deepStrictEqual(signalingMessageFromJson(json), message);
 * throws(() => signalingMessageFromJson({ type: "offer", sdp: 42 }));
 * ```
 *
 * @module
 */

import type { IceCandidate } from "./backend.ts";
import { MalformedSignalingMessageError } from "./errors.ts";
import type { SignalingMessage } from "./signaling.ts";

/** A {@linkcode SignalingMessage} as plain JSON. */
export type SignalingMessageJson =
  | {
    /** `"offer"` or `"answer"`. */
    type: "offer" | "answer";
    /** The SDP text. */
    sdp: string;
  }
  | {
    /** A trickled ICE candidate. */
    type: "candidate";
    /** The `RTCIceCandidateInit`, or `null` at the end of candidates. */
    candidate: IceCandidate | null;
  };

/** The JSON form of `message`, with only the fields the reader knows. */
export function signalingMessageToJson(
  message: SignalingMessage,
): SignalingMessageJson {
  switch (message.type) {
    case "offer":
    case "answer":
      return { type: message.type, sdp: message.sdp };
    case "candidate": {
      const c = message.candidate;
      if (c === null) return { type: "candidate", candidate: null };
      const candidate: IceCandidate = { candidate: c.candidate };
      if (c.sdpMid !== undefined) candidate.sdpMid = c.sdpMid;
      if (c.sdpMLineIndex !== undefined) {
        candidate.sdpMLineIndex = c.sdpMLineIndex;
      }
      if (c.usernameFragment !== undefined) {
        candidate.usernameFragment = c.usernameFragment;
      }
      return { type: "candidate", candidate };
    }
    default:
      throw new TypeError(
        `unknown signalling message type ${
          (message as { type: unknown }).type
        }`,
      );
  }
}

/**
 * Reads a signalling message from parsed JSON.
 *
 * @throws {MalformedSignalingMessageError} for anything that is not one:
 * an unknown type, an SDP that is not a non-empty string, a candidate that
 * is not an `RTCIceCandidateInit`.
 */
export function signalingMessageFromJson(value: unknown): SignalingMessage {
  if (!isRecord(value)) {
    throw new MalformedSignalingMessageError(
      "a signalling message that is not a JSON object",
    );
  }
  switch (value.type) {
    case "offer":
    case "answer":
      if (typeof value.sdp !== "string" || value.sdp === "") {
        throw new MalformedSignalingMessageError(
          `an SDP ${value.type} without its SDP text`,
        );
      }
      return { type: value.type, sdp: value.sdp };
    case "candidate":
      return {
        type: "candidate",
        candidate: iceCandidateFromJson(value.candidate),
      };
    default:
      throw new MalformedSignalingMessageError(
        `unknown signalling message type ${JSON.stringify(value.type)}`,
      );
  }
}

/**
 * Reads an `RTCIceCandidateInit` from parsed JSON; `null`, and a candidate
 * whose `candidate` is `""`, mean the end of candidates.
 *
 * @throws {MalformedSignalingMessageError} if `value` is neither.
 */
export function iceCandidateFromJson(value: unknown): IceCandidate | null {
  if (value === null) return null;
  if (!isRecord(value)) {
    throw new MalformedSignalingMessageError(
      "an ICE candidate that is not an RTCIceCandidateInit object",
    );
  }
  const { candidate, sdpMid, sdpMLineIndex, usernameFragment } = value;
  if (typeof candidate !== "string") {
    throw new MalformedSignalingMessageError(
      "an ICE candidate without its candidate string",
    );
  }
  if (candidate === "") return null;
  const out: IceCandidate = { candidate };
  if (sdpMid !== undefined) {
    if (sdpMid !== null && typeof sdpMid !== "string") {
      throw new MalformedSignalingMessageError("an ICE candidate's sdpMid");
    }
    out.sdpMid = sdpMid;
  }
  if (sdpMLineIndex !== undefined) {
    if (
      sdpMLineIndex !== null &&
      !(typeof sdpMLineIndex === "number" &&
        Number.isInteger(sdpMLineIndex) && sdpMLineIndex >= 0 &&
        sdpMLineIndex <= 0xffff)
    ) {
      throw new MalformedSignalingMessageError(
        "an ICE candidate's sdpMLineIndex",
      );
    }
    out.sdpMLineIndex = sdpMLineIndex;
  }
  if (usernameFragment !== undefined) {
    if (usernameFragment !== null && typeof usernameFragment !== "string") {
      throw new MalformedSignalingMessageError(
        "an ICE candidate's usernameFragment",
      );
    }
    out.usernameFragment = usernameFragment;
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
