/**
 * Turning the seam's options into werift's: where ICE gathers, which STUN
 * servers, which DTLS certificate.
 *
 * Internal to the werift backend.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  createSelfSignedCertificate,
  HashAlgorithm,
  NamedCurveAlgorithm,
  RTCCertificate,
  SignatureAlgorithm,
} from "werift";
import type { CertificatePem, IceServer } from "../../core/backend.ts";
import { P2prtcError } from "../../core/errors.ts";
import { messageOf } from "./internals.ts";

// The largest message either side sends, announced as `a=max-message-size`:
// the core's constant, so the SDP the core builds and werift's agree.
export { MAX_MESSAGE_SIZE } from "../../core/sdp.ts";

/** werift's part of the configuration that decides where ICE gathers. */
export interface BindOptions {
  /** Gather on the machine's IPv4 interfaces. */
  iceUseIpv4?: boolean;
  /** Gather on the machine's IPv6 interfaces. */
  iceUseIpv6?: boolean;
  /** Extra addresses to gather on, loopback included. */
  iceAdditionalHostAddresses?: string[];
  /** The address each socket family binds to. */
  iceInterfaceAddresses?: { udp4?: string; udp6?: string };
}

/**
 * werift options that gather exactly one host candidate, on `address`.
 * werift's interface scan skips loopback, and its address filter falls back
 * to every interface when nothing matches, so the scan is turned off and the
 * address added by hand; the socket binds to it too.
 */
export function bindOptions(address: string | undefined): BindOptions {
  if (address === undefined) return {};
  return {
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: [address],
    iceInterfaceAddresses: address.includes(":")
      ? { udp6: address }
      : { udp4: address },
  };
}

/** Whether any of `servers` is a STUN server. */
export function hasStunServer(servers: IceServer[]): boolean {
  return servers.some((server) =>
    [server.urls].flat().some((url) => /^stuns?:/i.test(url.trim()))
  );
}

/** A fresh self-signed ECDSA P-256 certificate, made the way werift makes its own. */
export async function freshCertificate(): Promise<RTCCertificate> {
  const { certPem, keyPem, signatureHash } = await createSelfSignedCertificate(
    { hash: HashAlgorithm.sha256_4, signature: SignatureAlgorithm.ecdsa_3 },
    NamedCurveAlgorithm.secp256r1_23,
  );
  return new RTCCertificate(keyPem, certPem, signatureHash);
}

/** werift's certificate for a PEM pair (ECDSA or RSA, signed with SHA-256). */
export function parseCertificate(pem: CertificatePem): RTCCertificate {
  const rsa = /-----BEGIN RSA PRIVATE KEY-----/.test(pem.privateKey) ||
    isRsaCertificate(pem.certificate);
  try {
    return new RTCCertificate(pem.privateKey, pem.certificate, {
      hash: HashAlgorithm.sha256_4,
      signature: rsa ? SignatureAlgorithm.rsa_1 : SignatureAlgorithm.ecdsa_3,
    });
  } catch (error) {
    throw new P2prtcError(
      "ERR_INVALID_CERTIFICATE",
      `werift cannot use the certificate: ${messageOf(error)}`,
      { cause: error },
    );
  }
}

/** Whether the certificate's DER holds the rsaEncryption OID (1.2.840.113549.1.1.1). */
function isRsaCertificate(pem: string): boolean {
  const body = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const der = Buffer.from(body, "base64");
  return der.includes(Buffer.from("2a864886f70d010101", "hex"));
}
