/**
 * Two self-signed ECDSA P-256 certificates (valid until 2126) for tests of
 * the `certificate` option, with their sha-256 fingerprints as computed by
 * `openssl x509 -fingerprint -sha256`. Test data only: the keys are public.
 *
 * @module
 */

import type { CertificatePem } from "../../core/backend.ts";

/** A certificate and key with the fingerprint an independent tool computed. */
export interface TestCertificate {
  /** The PEM pair to pass as the `certificate` option. */
  pem: CertificatePem;
  /** Its sha-256 fingerprint, `AB:CD:...`, from openssl. */
  fingerprint: string;
}

/** Test certificate 1, `CN=p2prtc-test-1`. */
export const CERTIFICATE_1: TestCertificate = {
  pem: {
    certificate: `-----BEGIN CERTIFICATE-----
MIIBhzCCAS2gAwIBAgIUGLNFu/ZPw7tNYWqtXrj/i6gS9KQwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNcDJwcnRjLXRlc3QtMTAgFw0yNjExMjUyMTAxNTZaGA8yMTI2
MTEwMTIxMDE1NlowGDEWMBQGA1UEAwwNcDJwcnRjLXRlc3QtMTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABCC36otrd5fwkwBqplTk/qsKYysNpP8xppNdu0HOgeRp
E5LvA1yTc9RPKss8FCqhjYQnAVZBB5aQ6Tta8QsazH+jUzBRMB0GA1UdDgQWBBRj
TFI7ayqV1WW+mKbQVlK7PBq5iDAfBgNVHSMEGDAWgBRjTFI7ayqV1WW+mKbQVlK7
PBq5iDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIHQc7f04s+9y
bncF2yMZQKd2cmITRrN97BIYYjqgtYAvAiEA+WZkr/iPNzYkZFTo7vnhDaKVUtHt
Y4O0lVlas1bLS/c=
-----END CERTIFICATE-----
`,
    privateKey: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgIO/Qkh3v0StEiz4R
mcWkK2/eUojCM7tJixFDlz4cBMuhRANCAAQgt+qLa3eX8JMAaqZU5P6rCmMrDaT/
MaaTXbtBzoHkaROS7wNck3PUTyrLPBQqoY2EJwFWQQeWkOk7WvELGsx/
-----END PRIVATE KEY-----
`,
  },
  fingerprint:
    "CC:24:ED:BB:69:B5:C2:C0:14:0C:6C:0F:13:18:92:F7:84:9C:D8:53:6D:24:64:7C:BC:93:69:57:46:1D:50:03",
};

/** Test certificate 2, `CN=p2prtc-test-2`. */
export const CERTIFICATE_2: TestCertificate = {
  pem: {
    certificate: `-----BEGIN CERTIFICATE-----
MIIBhzCCAS2gAwIBAgIUdDcOmowGiA/463pcTOFdzIBeAQIwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNcDJwcnRjLXRlc3QtMjAgFw0yNjExMjUyMTAxNTZaGA8yMTI2
MTEwMTIxMDE1NlowGDEWMBQGA1UEAwwNcDJwcnRjLXRlc3QtMjBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABLpzZFiWXnH0/sEbxVVpgwACqdbovgFczsOb77I7Tlw8
GlJPCTewp8RdkUSEXA5cSMXRRNgqEF+dkVHAA1R22xmjUzBRMB0GA1UdDgQWBBQg
OzVgM3mIvI2F8Uba48cLYcnW+DAfBgNVHSMEGDAWgBQgOzVgM3mIvI2F8Uba48cL
YcnW+DAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQCw29Sdf2Xt
JZnywHRc43Yn0KYeGpBm2seyRUAQSbtPzgIgMtfaEids1JNM5F/RSA6GIHMV3cO0
MlfJDE26vX8+WR4=
-----END CERTIFICATE-----
`,
    privateKey: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVPtVhEvcazDaYzpi
K0mzRjObD9f+thinWg68HO5Z9NKhRANCAAS6c2RYll5x9P7BG8VVaYMAAqnW6L4B
XM7Dm++yO05cPBpSTwk3sKfEXZFEhFwOXEjF0UTYKhBfnZFRwANUdtsZ
-----END PRIVATE KEY-----
`,
  },
  fingerprint:
    "25:24:B3:FA:EC:B2:C3:45:D5:51:86:0B:4C:6A:9E:09:57:9F:B0:06:28:AA:E1:35:BE:E7:9A:AF:3A:AB:31:11",
};
