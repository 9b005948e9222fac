/**
 * The hook bus, Prosody style. Modules register handlers on event names such as
 *   'iq-get/host/urn:xmpp:ping'     an IQ get to the server, by payload namespace
 *   'iq-set/self/jabber:iq:roster'  an IQ set to the sender's own account (no 'to', or own bare JID)
 *   'iq-get/bare/vcard-temp'        an IQ get to another local account's bare JID
 *   'message/host'                  a message to the server domain
 * A handler returning true has taken the event: the chain stops. Higher priority runs first;
 * equal priorities run in registration order.
 */

export type HookHandler<E> = (event: E) => boolean | void;

interface Entry {
  handler: HookHandler<never>;
  priority: number;
  seq: number;
}

export class HookBus {
  /**
   * Chains are never changed in place: on() and removal store a new array, so fire() may walk
   * the one it read without copying it (it runs for stanza/pre-route and message/routed on
   * every stanza), and a handler that unregisters itself mid-chain does not disturb the walk.
   */
  private readonly chains = new Map<string, readonly Entry[]>();
  private seq = 0;

  /** Register; returns a function that removes this handler again. */
  on<E>(name: string, handler: HookHandler<E>, priority = 0): () => void {
    const entry: Entry = { handler: handler as HookHandler<never>, priority, seq: this.seq++ };
    const chain = [...(this.chains.get(name) ?? []), entry];
    chain.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
    this.chains.set(name, chain);
    return () => {
      const current = this.chains.get(name);
      if (!current || !current.includes(entry)) return;
      const rest = current.filter((e) => e !== entry);
      if (rest.length === 0) this.chains.delete(name);
      else this.chains.set(name, rest);
    };
  }

  /** Whether any handler listens on `name` (lets the router skip building an event). */
  has(name: string): boolean {
    return this.chains.has(name);
  }

  /**
   * Run the chain. True when a handler returned true. Exceptions propagate to the caller (the
   * router turns a thrown StanzaError into an error reply).
   */
  fire<E>(name: string, event: E): boolean {
    const chain = this.chains.get(name);
    if (!chain) return false;
    for (const { handler } of chain) {
      if ((handler as HookHandler<E>)(event) === true) return true;
    }
    return false;
  }
}

/** XEP-0030 disco#info identity. */
export interface Identity {
  category: string;
  type: string;
  name?: string;
}

/** What the server advertises in disco#info (XEP-0030 §3.1); modules add their namespaces. */
export class FeatureRegistry {
  private readonly features = new Set<string>();
  private readonly identities: Identity[] = [];

  add(ns: string): void {
    this.features.add(ns);
  }

  remove(ns: string): void {
    this.features.delete(ns);
  }

  has(ns: string): boolean {
    return this.features.has(ns);
  }

  /** Sorted, so that the disco#info answer (and XEP-0115 hashes over it) is stable. */
  list(): string[] {
    return [...this.features].sort();
  }

  addIdentity(identity: Identity): void {
    this.identities.push(identity);
  }

  private readonly accountFeatures = new Set<string>();

  /** What the server answers for an account's bare JID (XEP-0030 §3.1, e.g. XEP-0313 archives). */
  addAccountFeature(ns: string): void {
    this.accountFeatures.add(ns);
  }

  /** Sorted, like list(). */
  listAccountFeatures(): string[] {
    return [...this.accountFeatures].sort();
  }

  private readonly accountIdentities: Identity[] = [];

  /** An identity of every account's bare JID (XEP-0030 §3.1, e.g. XEP-0163's pubsub/pep). */
  addAccountIdentity(identity: Identity): void {
    this.accountIdentities.push(identity);
  }

  listAccountIdentities(): Identity[] {
    return this.accountIdentities.slice();
  }

  private readonly items = new Map<string, string | undefined>();

  /** XEP-0030 §4: an entity the server lists in its disco#items (e.g. an XEP-0114 component). */
  addItem(jid: string, name?: string): void {
    this.items.set(jid, name);
  }

  /** Items in code-point order of their JIDs. */
  listItems(): { jid: string; name?: string }[] {
    return [...this.items.keys()].sort().map((jid) => ({ jid, name: this.items.get(jid) }));
  }

  listIdentities(): Identity[] {
    return this.identities.slice();
  }

  private readonly extensions: string[] = [];

  /**
   * XEP-0128: a data form (serialised <x xmlns='jabber:x:data' type='result'/> with a FORM_TYPE)
   * that extends the server's disco#info, e.g. XEP-0157 contact addresses. Added compatibly.
   */
  addExtension(form: string): void {
    this.extensions.push(form);
  }

  listExtensions(): string[] {
    return this.extensions.slice();
  }
}
