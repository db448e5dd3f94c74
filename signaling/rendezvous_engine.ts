/**
 * The seam between the rendezvous server and what lets its instances share
 * one view: which peer is connected to which instance, and how a frame gets
 * there. {@linkcode memoryEngine} serves one instance (or several in one
 * isolate); `rendezvous_kv.ts` shares the view through Deno KV.
 *
 * @module
 */

/** A frame on its way to the connection registered for `to`. */
export interface EngineEnvelope {
  /** The peer it is for. */
  to: string;
  /** The peer that sent it, as authenticated (or whose departure it tells). */
  from: string;
  /** The frame to send to `to`'s connection, as is. */
  frame: string;
}

/** What an engine calls on the server instance that joined it. */
export interface EngineSink {
  /** A frame for a peer registered through this instance. */
  deliver(envelope: EngineEnvelope): void;
  /**
   * `peer` registered again, through another connection (here or on
   * another instance): its connection `conn` on this instance must go.
   */
  replaced(peer: string, conn: string): void;
}

/**
 * Where registrations live, shared by every server instance that joins it.
 * Implementations must deliver the frames one member forwards to one peer
 * in the order it forwarded them.
 */
export interface RendezvousEngine {
  /** Joins as one server instance; frames for its peers go to `sink`. */
  join(sink: EngineSink): Promise<EngineMember>;
}

/** One server instance's membership of an engine. */
export interface EngineMember {
  /**
   * Registers `peer` as connected here, through connection `conn`. A
   * previous registration of `peer` is replaced, and its instance told
   * ({@linkcode EngineSink.replaced}).
   */
  register(peer: string, conn: string): Promise<void>;
  /** Removes the registration of `peer`, if it is still `conn`'s. */
  unregister(peer: string, conn: string): Promise<void>;
  /**
   * Sends `envelope` to the instance where `envelope.to` is registered.
   * Resolves `false` if it is registered nowhere.
   */
  forward(envelope: EngineEnvelope): Promise<boolean>;
  /** Leaves the engine: this instance's registrations are removed. */
  close(): Promise<void>;
}

/**
 * An engine in this isolate's memory: for one server instance, or several
 * handlers in one program. Instances in other isolates (workers, processes,
 * Deno Deploy's other instances) do not see it; use `kvEngine` for them.
 */
export function memoryEngine(): RendezvousEngine {
  const holders = new Map<string, { sink: EngineSink; conn: string }>();
  return {
    join(sink: EngineSink): Promise<EngineMember> {
      const mine = new Set<string>();
      const member: EngineMember = {
        register(peer, conn) {
          const previous = holders.get(peer);
          holders.set(peer, { sink, conn });
          mine.add(peer);
          if (previous && !(previous.sink === sink && previous.conn === conn)) {
            previous.sink.replaced(peer, previous.conn);
          }
          return Promise.resolve();
        },
        unregister(peer, conn) {
          const holder = holders.get(peer);
          if (holder?.sink === sink && holder.conn === conn) {
            holders.delete(peer);
            mine.delete(peer);
          }
          return Promise.resolve();
        },
        forward(envelope) {
          const holder = holders.get(envelope.to);
          if (holder === undefined) return Promise.resolve(false);
          holder.sink.deliver(envelope);
          return Promise.resolve(true);
        },
        close() {
          for (const peer of mine) {
            if (holders.get(peer)?.sink === sink) holders.delete(peer);
          }
          mine.clear();
          return Promise.resolve();
        },
      };
      return Promise.resolve(member);
    },
  };
}
