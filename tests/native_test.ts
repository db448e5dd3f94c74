/**
 * The one test file that loads node-datachannel.
 *
 * node-datachannel keeps C++ statics from the first V8 isolate that loads
 * it, and Deno panics when a second isolate of the same process creates or
 * receives a data channel. `deno test` runs every test file (and every doc
 * example) in an isolate of its own, so every test that uses libdatachannel,
 * directly or through the js-libp2p reference peer's transport in this
 * process, is registered from here. The js-libp2p peer itself runs in a
 * child process and does not count.
 */

import "./libdatachannel_cases.ts";
import "./native_protocol_cases.ts";
import "./mixed_backends_cases.ts";
import "./browser_cases.ts";
import "./browser_direct_cases.ts";
import "./direct_robustness_cases.ts";
import "./relay_signaling_native_cases.ts";
import "./browser_relay_cases.ts";
import "./libp2p_libdatachannel_cases.ts";
import "./rendezvous_native_cases.ts";
import "./browser_rendezvous_cases.ts";
