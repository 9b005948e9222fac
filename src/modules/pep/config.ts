/**
 * PEP node configuration (XEP-0060 §16.4.4 'pubsub#node_config' fields, the subset PEP clients
 * use) and the XEP-0004 forms that carry it: node configuration (XEP-0060 §8.2) and
 * publish-options preconditions (XEP-0060 §7.1.5, XEP-0223).
 *
 * A configuration is kept as the form's own field values (strings), normalised, so the store
 * needs no schema of its own and the configure form is answered from it directly.
 */
import { StanzaError } from '../../errors.js';
import { attr, escapeText } from '../../xml/escape.js';
import { childElements, type Element } from '../../xml/element.js';

export const PUBSUB = 'http://jabber.org/protocol/pubsub';
export const PUBSUB_OWNER = `${PUBSUB}#owner`;
export const PUBSUB_EVENT = `${PUBSUB}#event`;
export const PUBSUB_ERRORS = `${PUBSUB}#errors`;
export const NODE_CONFIG = `${PUBSUB}#node_config`;
export const PUBLISH_OPTIONS = `${PUBSUB}#publish-options`;
export const DATA_FORMS = 'jabber:x:data';

/** Items one node may keep: what max_items='max' means here (XEP-0060 §16.4.4). */
export const MAX_ITEMS_LIMIT = 1000;

export type NodeConfig = Record<string, string>;

/** XEP-0060 §16.4.4 field → its type in the form, allowed values and the PEP default. */
interface FieldSpec {
  type: 'list-single' | 'boolean' | 'text-single';
  label: string;
  options?: readonly string[];
  default: string;
  /** Bring a submitted value to its stored form; throw not-acceptable when it is not one. */
  normalise(value: string): string;
}

const bool = (value: string): string => {
  // XEP-0004 §3.3 boolean: '0'/'false' or '1'/'true'.
  if (value === '1' || value === 'true') return '1';
  if (value === '0' || value === 'false') return '0';
  throw new StanzaError('not-acceptable', `'${value}' is not a boolean`);
};

const oneOf =
  (options: readonly string[]) =>
  (value: string): string => {
    if (!options.includes(value)) throw new StanzaError('not-acceptable', `'${value}' is not one of ${options.join(', ')}`);
    return value;
  };

const ACCESS_MODELS = ['presence', 'open', 'whitelist'] as const;
const SEND_LAST = ['never', 'on_sub', 'on_sub_and_presence'] as const;

export const FIELDS: Record<string, FieldSpec> = {
  // XEP-0163 §5: PEP nodes default to the presence access model.
  'pubsub#access_model': { type: 'list-single', label: 'Who may subscribe and retrieve items', options: ACCESS_MODELS, default: 'presence', normalise: oneOf(ACCESS_MODELS) },
  // XEP-0163 §5 / XEP-0060 §16.4.4: one item unless configured otherwise; 'max' is the service's limit.
  'pubsub#max_items': {
    type: 'text-single',
    label: 'Max # of items to persist',
    default: '1',
    normalise(value) {
      if (value === 'max') return 'max';
      if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new StanzaError('not-acceptable', `max_items '${value}' is not a positive number or 'max'`);
      if (Number(value) > MAX_ITEMS_LIMIT) throw new StanzaError('not-acceptable', `max_items is at most ${MAX_ITEMS_LIMIT}`);
      return String(Number(value));
    },
  },
  'pubsub#persist_items': { type: 'boolean', label: 'Persist items to storage', default: '1', normalise: bool },
  'pubsub#notify_retract': { type: 'boolean', label: 'Notify subscribers when items are removed', default: '1', normalise: bool },
  'pubsub#notify_delete': { type: 'boolean', label: 'Notify subscribers when the node is deleted', default: '1', normalise: bool },
  'pubsub#deliver_notifications': { type: 'boolean', label: 'Deliver event notifications', default: '1', normalise: bool },
  'pubsub#deliver_payloads': { type: 'boolean', label: 'Deliver payloads with event notifications', default: '1', normalise: bool },
  // XEP-0163 §4.3.4: the last item goes to a contact when it comes online.
  'pubsub#send_last_published_item': { type: 'list-single', label: 'When to send the last published item', options: SEND_LAST, default: 'on_sub_and_presence', normalise: oneOf(SEND_LAST) },
  'pubsub#title': {
    type: 'text-single',
    label: 'A friendly name for the node',
    default: '',
    normalise(value) {
      if (Buffer.byteLength(value) > 1024) throw new StanzaError('not-acceptable', 'title longer than 1024 bytes');
      return value;
    },
  },
};

export function defaultConfig(): NodeConfig {
  const c: NodeConfig = {};
  for (const [k, spec] of Object.entries(FIELDS)) c[k] = spec.default;
  return c;
}

/** A stored configuration with defaults filled in (fields added after it was stored). */
export function withDefaults(stored: NodeConfig): NodeConfig {
  return { ...defaultConfig(), ...stored };
}

/** How many items the node keeps. */
export function keepCount(config: NodeConfig): number {
  // XEP-0060 §16.4.4 persist_items=false: nothing is kept for retrieval; the last item stays so
  // that XEP-0163 §4.3.4 can still send it to contacts coming online.
  if (config['pubsub#persist_items'] === '0') return 1;
  const max = config['pubsub#max_items'];
  return max === 'max' || max === undefined ? MAX_ITEMS_LIMIT : Math.min(Number(max), MAX_ITEMS_LIMIT);
}

/** A pubsub-specific error: the stanza condition plus XEP-0060's application condition. */
export function pubsubError(
  condition: ConstructorParameters<typeof StanzaError>[0],
  pubsubCondition: string | null,
  text?: string,
  extra = '',
  /** When XEP-0060 gives another type than the condition's usual one (RFC 6120 §8.3.3). */
  type?: ConstructorParameters<typeof StanzaError>[2],
): StanzaError {
  const app = pubsubCondition === null ? undefined : `<${pubsubCondition} xmlns='${PUBSUB_ERRORS}'${extra}/>`;
  return new StanzaError(condition, text, type, app);
}

/**
 * The fields of an XEP-0004 form of the given FORM_TYPE, as var → first value. Returns null for
 * type='cancel'. Throws bad-request for a form of another type.
 */
export function readForm(x: Element, formType: string): Map<string, string> | null {
  if (x.attrs.type === 'cancel') return null;
  const fields = new Map<string, string>();
  for (const f of childElements(x)) {
    if (f.getName() !== 'field' || typeof f.attrs.var !== 'string') continue;
    const value = f.getChild('value');
    fields.set(f.attrs.var, value ? value.getText() : '');
  }
  const type = fields.get('FORM_TYPE');
  // XEP-0004 §3.4 / XEP-0068: a form without FORM_TYPE is accepted as ours (some clients omit it).
  if (type !== undefined && type !== formType) throw new StanzaError('bad-request', `form is ${type}, expected ${formType}`);
  fields.delete('FORM_TYPE');
  return fields;
}

/** The form element in a parent (<configure/>, <publish-options/>), or null. */
export function formIn(parent: Element | undefined | null): Element | null {
  if (!parent) return null;
  return parent.getChild('x', DATA_FORMS) ?? null;
}

/**
 * Apply submitted fields to a configuration. Unknown fields are refused (XEP-0060 §8.2.5: a
 * configuration the service cannot honour is not-acceptable) so that a client never believes a
 * setting took effect when it did not.
 */
export function applyFields(base: NodeConfig, fields: Map<string, string>): NodeConfig {
  const out = { ...base };
  for (const [name, value] of fields) {
    const spec = FIELDS[name];
    if (!spec) throw new StanzaError('not-acceptable', `unsupported configuration field ${name}`);
    out[name] = spec.normalise(value);
  }
  return out;
}

/**
 * XEP-0060 §7.1.5 publish-options: each given field is a precondition the node's configuration
 * must meet. Fields Hermod does not implement are ignored: they configure nothing here, and
 * refusing them would stop clients that send them out of habit from publishing at all.
 * Returns the config a new node gets (defaults with the preconditions applied); throws
 * conflict + precondition-not-met when an existing node's configuration differs.
 */
export function checkPreconditions(existing: NodeConfig | null, fields: Map<string, string>): NodeConfig {
  const base = existing ?? defaultConfig();
  const out = { ...base };
  for (const [name, value] of fields) {
    const spec = FIELDS[name];
    if (!spec) continue;
    let wanted: string;
    try {
      wanted = spec.normalise(value);
    } catch {
      throw pubsubError('conflict', 'precondition-not-met', `${name}=${value} cannot be met`);
    }
    if (existing !== null && base[name] !== wanted) {
      throw pubsubError('conflict', 'precondition-not-met', `node has ${name}=${base[name]}, not ${wanted}`);
    }
    out[name] = wanted;
  }
  return out;
}

/** XEP-0060 §8.2.4: the configuration form (type='form') with the node's current values. */
export function configForm(config: NodeConfig): string {
  let fields = `<field var='FORM_TYPE' type='hidden'><value>${NODE_CONFIG}</value></field>`;
  for (const [name, spec] of Object.entries(FIELDS)) {
    const value = config[name] ?? spec.default;
    const options = (spec.options ?? []).map((o) => `<option><value>${escapeText(o)}</value></option>`).join('');
    fields += `<field${attr('var', name)}${attr('type', spec.type)}${attr('label', spec.label)}><value>${escapeText(value)}</value>${options}</field>`;
  }
  return `<x xmlns='${DATA_FORMS}' type='form'>${fields}</x>`;
}
