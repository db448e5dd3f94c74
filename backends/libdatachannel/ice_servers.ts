/**
 * W3C-style ICE server entries in the shape node-datachannel takes.
 *
 * Internal to the libdatachannel backend.
 *
 * @module
 */

import type { IceServer } from "../../core/backend.ts";
import { NotSupportedError, P2prtcError } from "../../core/errors.ts";

/** One ICE server as node-datachannel's configuration object has it. */
export interface NativeIceServer {
  /** Host name or address. */
  hostname: string;
  /** UDP or TCP port. */
  port: number;
  /** The TURN user name. */
  username?: string;
  /** The TURN password. */
  password?: string;
  /** How to reach a TURN server; absent for STUN. */
  relayType?: "TurnUdp" | "TurnTcp" | "TurnTls";
}

const URL_PATTERN =
  /^(stuns?|turns?):(\[[0-9A-Fa-f:.]+\]|[^:?[\]]+)(?::(\d{1,5}))?(?:\?transport=(udp|tcp))?$/i;

/**
 * Converts `{ urls, username, credential }` entries. The object form is used
 * rather than libdatachannel's own URL syntax so that user names and
 * passwords need no escaping.
 */
export function toNativeIceServers(servers: IceServer[]): NativeIceServer[] {
  const out: NativeIceServer[] = [];
  for (const server of servers) {
    for (
      const url of typeof server.urls === "string" ? [server.urls] : server.urls
    ) {
      const match = URL_PATTERN.exec(url.trim());
      if (match === null) {
        throw new P2prtcError(
          "ERR_INVALID_ICE_SERVER",
          `not a stun:, turn: or turns: URL: ${url}`,
        );
      }
      const scheme = match[1].toLowerCase();
      const hostname = match[2].replace(/^\[(.*)\]$/, "$1");
      const secure = scheme.endsWith("s");
      const port = match[3] === undefined
        ? (secure ? 5349 : 3478)
        : Number(match[3]);
      if (port < 1 || port > 65535) {
        throw new P2prtcError("ERR_INVALID_ICE_SERVER", `bad port in ${url}`);
      }
      if (scheme === "stuns") {
        throw new NotSupportedError(
          "libdatachannel has no STUN over TLS (stuns:)",
        );
      }
      if (scheme === "stun") {
        out.push({ hostname, port });
        continue;
      }
      if (server.username === undefined || server.credential === undefined) {
        throw new P2prtcError(
          "ERR_INVALID_ICE_SERVER",
          `a TURN server needs a username and a credential: ${url}`,
        );
      }
      const transport = match[4]?.toLowerCase() ?? (secure ? "tcp" : "udp");
      out.push({
        hostname,
        port,
        username: server.username,
        password: server.credential,
        relayType: secure
          ? "TurnTls"
          : transport === "tcp"
          ? "TurnTcp"
          : "TurnUdp",
      });
    }
  }
  return out;
}
