/**
 * A {@linkcode RendezvousEngine} on Deno KV, so that rendezvous instances
 * that share one KV database share one view: a peer connected to one
 * instance is reachable from a peer connected to any other.
 *
 * On Deno Deploy, `Deno.openKv()` opens the app's one database, which every
 * instance in every region sees, and `kv.watch` wakes an instance as soon as
 * a frame is written for it. Locally, a KV database is a SQLite file: every
 * process that opens the same path shares the data, but `kv.watch` only hears
 * writes made in its own process (its workers included). Instances in
 * separate processes sharing a file therefore also poll
 * (`pollInterval`); on Deploy or in one process, leave it unset.
 *
 * Why KV and not `BroadcastChannel`: Deno Deploy Classic delivered a
 * `BroadcastChannel` to every isolate, but it was shut down on 20 July
 * 2026; the current Deno Deploy runs each instance isolated and documents
 * KV, not `BroadcastChannel`, as what instances share. Locally a
 * `BroadcastChannel` does not leave its process either.
 *
 * The data, under `prefix` (default `["p2prtc-rendezvous"]`):
 *
 * - `[…, "peer", <peer id>]` → `{ instance, conn }`: where a peer is
 *   connected, written when it authenticates and deleted when it leaves;
 * - `[…, "instance", <id>]` → `{ until }`: each instance's heartbeat; an
 *   instance whose heartbeat has run out is gone, and so are its peers;
 * - `[…, "inbox", <instance>, <sender>, <seq>]` → a frame (or a notice that
 *   a peer connected elsewhere), deleted once delivered and expiring after
 *   `messageTtl` if its instance never reads it;
 * - `[…, "bell", <instance>]`: a counter bumped with every inbox write, which
 *   the instance watches.
 *
 * Each forward costs one or two reads and one atomic write; each instance
 * writes its heartbeat every `heartbeatInterval`.
 *
 * @example Two instances in one process share one database
 * ```ts ignore
 * import { kvEngine, rendezvousHandler } from "./rendezvous_server.ts";
 *
 * const kv = await Deno.openKv(); // --unstable-kv outside Deno Deploy
 * Deno.serve({ port: 8001 }, rendezvousHandler({ engine: kvEngine(kv) }));
 * Deno.serve({ port: 8002 }, rendezvousHandler({ engine: kvEngine(kv) }));
 * ```
 *
 * @module
 */

import type {
  EngineEnvelope,
  EngineMember,
  EngineSink,
  RendezvousEngine,
} from "./rendezvous_engine.ts";
import { isRecord, positive } from "./rendezvous_protocol.ts";

/** A part of a KV key, as `Deno.KvKeyPart` has them (symbols aside). */
export type KvKeyPart = string | number | bigint | boolean | Uint8Array;

/** A KV key. */
export type KvKey = readonly KvKeyPart[];

/**
 * The part of `Deno.AtomicOperation` the engine uses, so this module needs
 * no unstable types; a `Deno.AtomicOperation` is one.
 */
export interface RendezvousKvAtomic {
  /** Commits only if each key still has `versionstamp`. */
  check(
    ...checks: { key: KvKey; versionstamp: string | null }[]
  ): RendezvousKvAtomic;
  /** Sets `key`, optionally expiring. */
  set(
    key: KvKey,
    value: unknown,
    options?: { expireIn?: number },
  ): RendezvousKvAtomic;
  /** Deletes `key`. */
  delete(key: KvKey): RendezvousKvAtomic;
  /** Adds `n` to the 64-bit counter at `key`. */
  sum(key: KvKey, n: bigint): RendezvousKvAtomic;
  /** Commits; `ok` is false when a check failed. */
  commit(): Promise<{ ok: boolean }>;
}

/**
 * The part of `Deno.Kv` the engine uses; pass the result of
 * `Deno.openKv()`.
 */
export interface RendezvousKv {
  /** Reads one key. */
  get(key: KvKey): Promise<{ value: unknown; versionstamp: string | null }>;
  /** Lists the keys under a prefix, in key order. */
  list(
    selector: { prefix: KvKey },
    options?: { limit?: number },
  ): AsyncIterable<{ value: unknown; key: readonly unknown[] }>;
  /** Starts an atomic operation. */
  atomic(): RendezvousKvAtomic;
  /** Streams the keys' values, once at the start and then on changes. */
  watch(keys: KvKey[]): ReadableStream<unknown>;
}

/** Options for {@linkcode kvEngine}. */
export interface KvEngineOptions {
  /** The key prefix of everything the engine writes. */
  prefix?: KvKey;
  /**
   * How often each instance writes its heartbeat, in ms; an instance is
   * taken for gone three intervals after its last. Default 10 000.
   */
  heartbeatInterval?: number;
  /**
   * Also read the inbox this often, in ms, for instances that `kv.watch`
   * does not wake: separate processes sharing a local SQLite file. Default:
   * never (watch only).
   */
  pollInterval?: number;
  /** How long an undelivered frame is kept, in ms. Default 60 000. */
  messageTtl?: number;
  /**
   * How long a registration is kept without being rewritten, in ms; live
   * ones are rewritten halfway. A bound on what a crashed instance leaves.
   * Default one day.
   */
  registrationTtl?: number;
  /** Hears errors of background work. Default: `console.warn`. */
  onError?: (error: unknown) => void;
}

/**
 * An engine on `kv`. Every server instance that joins it with the same
 * database and prefix shares registrations with the others. The engine does
 * not close `kv`.
 */
export function kvEngine(
  kv: RendezvousKv,
  options: KvEngineOptions = {},
): RendezvousEngine {
  const settings: KvSettings = {
    prefix: options.prefix ?? ["p2prtc-rendezvous"],
    heartbeat: positive(
      options.heartbeatInterval,
      10_000,
      "heartbeatInterval",
    ),
    poll: options.pollInterval === undefined
      ? undefined
      : positive(options.pollInterval, 0, "pollInterval"),
    messageTtl: positive(options.messageTtl, 60_000, "messageTtl"),
    registrationTtl: positive(
      options.registrationTtl,
      86_400_000,
      "registrationTtl",
    ),
    onError: options.onError ??
      ((error) => console.warn("rendezvous KV engine:", error)),
  };
  return {
    async join(sink: EngineSink): Promise<EngineMember> {
      const member = new KvMember(kv, settings, sink);
      await member.start();
      return member;
    },
  };
}

interface KvSettings {
  prefix: KvKey;
  heartbeat: number;
  poll: number | undefined;
  messageTtl: number;
  registrationTtl: number;
  onError: (error: unknown) => void;
}

/** Where a peer is registered. */
interface Registration {
  instance: string;
  conn: string;
}

/** Inbox entries read per list call. */
const DRAIN_BATCH = 128;
/** Deletes per atomic operation. */
const DELETE_BATCH = 10;

class KvMember implements EngineMember {
  readonly id: string = crypto.randomUUID();
  readonly #kv: RendezvousKv;
  readonly #settings: KvSettings;
  readonly #sink: EngineSink;
  readonly #stop = new AbortController();
  readonly #local = new Map<string, { conn: string; writtenAt: number }>();
  readonly #liveness = new Map<string, { until: number; checkedAt: number }>();
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder();
  #seq = 0;
  /** Forwards, one after another, so frames keep their order. */
  #chain: Promise<unknown> = Promise.resolve();
  #draining: Promise<void> | undefined;
  #again = false;
  #watching: Promise<void> | undefined;
  #reader: ReadableStreamDefaultReader<unknown> | undefined;
  #timers: ReturnType<typeof setInterval>[] = [];
  #closing: Promise<void> | undefined;

  constructor(kv: RendezvousKv, settings: KvSettings, sink: EngineSink) {
    this.#kv = kv;
    this.#settings = settings;
    this.#sink = sink;
  }

  async start(): Promise<void> {
    await this.#beat();
    this.#watching = this.#watch();
    const onError = this.#settings.onError;
    this.#timers.push(
      setInterval(
        () => this.#beat().catch(onError),
        this.#settings.heartbeat,
      ),
    );
    if (this.#settings.poll !== undefined) {
      this.#timers.push(
        setInterval(() => this.#drain(), this.#settings.poll),
      );
    }
  }

  async register(peer: string, conn: string): Promise<void> {
    this.#live();
    const key = this.#key("peer", peer);
    const previous = asRegistration((await this.#kv.get(key)).value);
    await this.#commit(
      this.#kv.atomic().set(key, { instance: this.id, conn }, {
        expireIn: this.#settings.registrationTtl,
      }),
    );
    this.#local.set(peer, { conn, writtenAt: Date.now() });
    if (
      !previous || (previous.instance === this.id && previous.conn === conn)
    ) {
      return;
    }
    if (previous.instance === this.id) this.#sink.replaced(peer, previous.conn);
    else {await this.#post(previous.instance, {
        kick: peer,
        conn: previous.conn,
      });}
  }

  async unregister(peer: string, conn: string): Promise<void> {
    if (this.#local.get(peer)?.conn === conn) this.#local.delete(peer);
    const key = this.#key("peer", peer);
    const entry = await this.#kv.get(key);
    const current = asRegistration(entry.value);
    if (current?.instance === this.id && current.conn === conn) {
      // Unless it changed meanwhile: then it is someone else's.
      await this.#kv.atomic().check({ key, versionstamp: entry.versionstamp })
        .delete(key).commit();
    }
  }

  forward(envelope: EngineEnvelope): Promise<boolean> {
    const step = this.#chain.then(() => this.#forward(envelope));
    this.#chain = step.catch(() => {});
    return step;
  }

  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  async #close(): Promise<void> {
    // Forwards already asked for (a departing peer's notices) still go.
    await this.#chain;
    this.#stop.abort();
    for (const timer of this.#timers) clearInterval(timer);
    await this.#reader?.cancel().catch(() => {});
    await this.#watching;
    await this.#chain;
    await this.#draining;
    for (const [peer, { conn }] of [...this.#local]) {
      await this.unregister(peer, conn).catch(this.#settings.onError);
    }
    await this.#kv.atomic()
      .delete(this.#key("instance", this.id))
      .delete(this.#key("bell", this.id))
      .commit()
      .catch(this.#settings.onError);
  }

  async #forward(envelope: EngineEnvelope): Promise<boolean> {
    this.#live();
    const key = this.#key("peer", envelope.to);
    const entry = await this.#kv.get(key);
    const registration = asRegistration(entry.value);
    if (!registration) return false;
    if (registration.instance === this.id) {
      this.#sink.deliver(envelope);
      return true;
    }
    if (!await this.#alive(registration.instance)) {
      // Its instance is gone without cleaning up: so is the peer.
      await this.#kv.atomic().check({ key, versionstamp: entry.versionstamp })
        .delete(key).commit();
      return false;
    }
    await this.#post(registration.instance, {
      to: envelope.to,
      from: envelope.from,
      frame: this.#encoder.encode(envelope.frame),
    });
    return true;
  }

  /** Writes to `instance`'s inbox and rings its bell, in one operation. */
  async #post(instance: string, value: unknown): Promise<void> {
    await this.#commit(
      this.#kv.atomic()
        .set(this.#key("inbox", instance, this.id, ++this.#seq), value, {
          expireIn: this.#settings.messageTtl,
        })
        .sum(this.#key("bell", instance), 1n),
    );
  }

  async #alive(instance: string): Promise<boolean> {
    const now = Date.now();
    const cached = this.#liveness.get(instance);
    if (cached && now - cached.checkedAt < this.#settings.heartbeat / 2) {
      return cached.until > now;
    }
    const { value } = await this.#kv.get(this.#key("instance", instance));
    const until = isRecord(value) && typeof value.until === "number"
      ? value.until
      : 0;
    // A bound: instances come and go.
    if (this.#liveness.size >= 1024) this.#liveness.clear();
    this.#liveness.set(instance, { until, checkedAt: now });
    return until > now;
  }

  /** The heartbeat, and registrations rewritten halfway through their life. */
  async #beat(): Promise<void> {
    const { heartbeat, registrationTtl } = this.#settings;
    const now = Date.now();
    await this.#commit(
      this.#kv.atomic().set(
        this.#key("instance", this.id),
        { until: now + 3 * heartbeat },
        { expireIn: 3 * heartbeat },
      ),
    );
    for (const [peer, local] of this.#local) {
      if (now - local.writtenAt < registrationTtl / 2) continue;
      const key = this.#key("peer", peer);
      const entry = await this.#kv.get(key);
      const current = asRegistration(entry.value);
      if (current?.instance !== this.id || current.conn !== local.conn) {
        continue;
      }
      await this.#kv.atomic().check({ key, versionstamp: entry.versionstamp })
        .set(key, current, { expireIn: registrationTtl }).commit();
      local.writtenAt = now;
    }
  }

  /** Reads the inbox each time the bell rings, until closed. */
  async #watch(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        this.#reader = this.#kv.watch([this.#key("bell", this.id)])
          .getReader();
        while (!signal.aborted) {
          const { done } = await this.#reader.read();
          if (done) break;
          this.#drain();
        }
      } catch (error) {
        if (!signal.aborted) this.#settings.onError(error);
      } finally {
        this.#reader?.releaseLock();
        this.#reader = undefined;
      }
      // A watch that ended by itself is started again, after a pause.
      await pause(1000, signal);
    }
  }

  /** Delivers what is in the inbox; one drain at a time. */
  #drain(): void {
    if (this.#draining) {
      this.#again = true;
      return;
    }
    this.#draining = (async () => {
      do {
        this.#again = false;
        await this.#drainOnce();
      } while (this.#again && !this.#stop.signal.aborted);
    })().catch(this.#settings.onError).finally(() => {
      this.#draining = undefined;
    });
  }

  async #drainOnce(): Promise<void> {
    const prefix = this.#key("inbox", this.id);
    while (!this.#stop.signal.aborted) {
      const keys: KvKey[] = [];
      for await (
        const entry of this.#kv.list({ prefix }, { limit: DRAIN_BATCH })
      ) {
        keys.push(entry.key as KvKey);
        this.#handle(entry.value);
      }
      for (let i = 0; i < keys.length; i += DELETE_BATCH) {
        let operation = this.#kv.atomic();
        for (const key of keys.slice(i, i + DELETE_BATCH)) {
          operation = operation.delete(key);
        }
        await this.#commit(operation);
      }
      if (keys.length < DRAIN_BATCH) return;
    }
  }

  #handle(value: unknown): void {
    if (!isRecord(value)) return;
    if (typeof value.kick === "string" && typeof value.conn === "string") {
      this.#sink.replaced(value.kick, value.conn);
      return;
    }
    const { to, from, frame } = value;
    if (
      typeof to === "string" && typeof from === "string" &&
      frame instanceof Uint8Array
    ) {
      this.#sink.deliver({ to, from, frame: this.#decoder.decode(frame) });
    }
  }

  async #commit(operation: RendezvousKvAtomic): Promise<void> {
    const result = await operation.commit();
    if (!result.ok) throw new Error("a Deno KV commit was refused");
  }

  #key(...parts: KvKeyPart[]): KvKey {
    return [...this.#settings.prefix, ...parts];
  }

  #live(): void {
    if (this.#stop.signal.aborted) {
      throw new Error("the rendezvous KV engine member is closed");
    }
  }
}

function asRegistration(value: unknown): Registration | undefined {
  return isRecord(value) && typeof value.instance === "string" &&
      typeof value.conn === "string"
    ? { instance: value.instance, conn: value.conn }
    : undefined;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
