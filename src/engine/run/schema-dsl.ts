/**
 * A small schema language: one description of `elastic.yaml` gives both the validator (errors
 * with a path) and the published JSON Schema (docs/elastic.schema.json). No dependency: the
 * subset we need (objects, arrays, strings, integers, booleans, enums, patterns, "exactly one of")
 * is a few dozen lines, and our own checks (an IP address, a k=v pair) stay next to the shape.
 */
export type Schema = StringSchema | IntegerSchema | BooleanSchema | ArraySchema | ObjectSchema | MapSchema;

interface Common {
  readonly description?: string;
}
export interface StringSchema extends Common {
  readonly type: 'string';
  readonly enum?: readonly string[];
  readonly pattern?: string;
  readonly maxLength?: number;
  readonly default?: string;
  /** Our own check beyond the pattern: an error message, or null. */
  readonly check?: (v: string) => string | null;
  /** JSON Schema `format` to publish for `check` (informative). */
  readonly format?: string;
}
export interface IntegerSchema extends Common {
  readonly type: 'integer';
  readonly minimum?: number;
  readonly maximum?: number;
  readonly default?: number;
}
export interface BooleanSchema extends Common {
  readonly type: 'boolean';
  readonly default?: boolean;
}
export interface ArraySchema extends Common {
  readonly type: 'array';
  readonly items: Schema;
  readonly minItems?: number;
  readonly maxItems?: number;
  /** Item values (JSON) must be unique. */
  readonly unique?: boolean;
}
export interface ObjectSchema extends Common {
  readonly type: 'object';
  readonly properties: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  /** Exactly one of these keys must be present (a source is docker, ec2 or static). */
  readonly exactlyOne?: readonly string[];
  /** At least one of these keys must be present. */
  readonly anyOf?: readonly string[];
}
/** An object whose keys are names (sources by name). */
export interface MapSchema extends Common {
  readonly type: 'map';
  readonly keyPattern: string;
  readonly values: Schema;
  readonly minProperties?: number;
}

export type Path = ReadonlyArray<string | number>;
export interface SchemaError {
  readonly path: Path;
  readonly message: string;
  /** The error is about a key (unknown key): point at the key, not its value. */
  readonly atKey?: boolean;
}

export function formatPath(path: Path): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : /^[A-Za-z_][A-Za-z0-9_-]*$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`;
  return out || '(root)';
}

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : typeof v);

/** Validate a plain value (YAML/JSON) against a schema: every error, each with its path. */
export function validate(schema: Schema, value: unknown, path: Path = []): SchemaError[] {
  const err = (message: string, p: Path = path, atKey = false): SchemaError[] => [{ path: p, message, atKey }];
  switch (schema.type) {
    case 'string': {
      if (typeof value !== 'string') return err(`must be a string, not ${typeName(value)}`);
      if (schema.enum && !schema.enum.includes(value)) return err(`must be one of ${schema.enum.join(', ')}`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength) return err(`must be at most ${schema.maxLength} characters`);
      if (schema.pattern && !new RegExp(schema.pattern).test(value)) return err(schema.description ? `is not valid (${schema.description})` : `must match ${schema.pattern}`);
      const m = schema.check?.(value);
      return m ? err(m) : [];
    }
    case 'integer': {
      if (typeof value !== 'number' || !Number.isInteger(value)) return err(`must be an integer, not ${typeName(value)}`);
      const lo = schema.minimum;
      const hi = schema.maximum;
      if ((lo !== undefined && value < lo) || (hi !== undefined && value > hi)) {
        return err(lo !== undefined && hi !== undefined ? `must be ${lo}-${hi}` : lo !== undefined ? `must be at least ${lo}` : `must be at most ${hi}`);
      }
      return [];
    }
    case 'boolean':
      return typeof value === 'boolean' ? [] : err(`must be true or false, not ${typeName(value)}`);
    case 'array': {
      if (!Array.isArray(value)) return err(`must be a list, not ${typeName(value)}`);
      if (schema.minItems !== undefined && value.length < schema.minItems) return err(`must have at least ${schema.minItems} item${schema.minItems === 1 ? '' : 's'}`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) return err(`must have at most ${schema.maxItems} items`);
      const out = value.flatMap((v, i) => validate(schema.items, v, [...path, i]));
      if (schema.unique) {
        const seen = new Set<string>();
        value.forEach((v, i) => {
          const k = JSON.stringify(v);
          if (seen.has(k)) out.push({ path: [...path, i], message: 'is a duplicate' });
          seen.add(k);
        });
      }
      return out;
    }
    case 'map': {
      if (!isPlainObject(value)) return err(`must be a mapping, not ${typeName(value)}`);
      const keys = Object.keys(value);
      if (schema.minProperties !== undefined && keys.length < schema.minProperties) return err(`must have at least ${schema.minProperties} entr${schema.minProperties === 1 ? 'y' : 'ies'}`);
      const re = new RegExp(schema.keyPattern);
      return keys.flatMap((k) => (re.test(k) ? validate(schema.values, value[k], [...path, k]) : err(`name "${k.slice(0, 60)}" is not valid (letters, digits, "_", "." and "-")`, [...path, k], true)));
    }
    case 'object': {
      if (!isPlainObject(value)) return err(`must be a mapping, not ${typeName(value)}`);
      const out: SchemaError[] = [];
      for (const k of Object.keys(value)) {
        const sub = schema.properties[k];
        if (!sub) out.push({ path: [...path, k], message: `unknown key (expected one of: ${Object.keys(schema.properties).join(', ')})`, atKey: true });
        else if (value[k] !== undefined) out.push(...validate(sub, value[k], [...path, k]));
      }
      for (const r of schema.required ?? []) if (value[r] === undefined) out.push({ path, message: `${r} is required` });
      if (schema.exactlyOne) {
        const present = schema.exactlyOne.filter((k) => value[k] !== undefined);
        if (present.length !== 1) out.push({ path, message: present.length === 0 ? `needs one of: ${schema.exactlyOne.join(', ')}` : `has ${present.join(' and ')}: only one of ${schema.exactlyOne.join(', ')} is allowed` });
      }
      if (schema.anyOf && !schema.anyOf.some((k) => value[k] !== undefined)) out.push({ path, message: `needs at least one of: ${schema.anyOf.join(', ')}` });
      return out;
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The JSON Schema (draft 2020-12) of a schema: what editors and CI linters read. */
export function toJsonSchema(schema: Schema): Record<string, unknown> {
  const d = schema.description ? { description: schema.description } : {};
  switch (schema.type) {
    case 'string':
      return {
        type: 'string',
        ...d,
        ...(schema.enum ? { enum: [...schema.enum] } : {}),
        ...(schema.pattern ? { pattern: schema.pattern } : {}),
        ...(schema.maxLength !== undefined ? { maxLength: schema.maxLength } : {}),
        ...(schema.format ? { format: schema.format } : {}),
        ...(schema.default !== undefined ? { default: schema.default } : {}),
      };
    case 'integer':
      return { type: 'integer', ...d, ...(schema.minimum !== undefined ? { minimum: schema.minimum } : {}), ...(schema.maximum !== undefined ? { maximum: schema.maximum } : {}), ...(schema.default !== undefined ? { default: schema.default } : {}) };
    case 'boolean':
      return { type: 'boolean', ...d, ...(schema.default !== undefined ? { default: schema.default } : {}) };
    case 'array':
      return { type: 'array', ...d, items: toJsonSchema(schema.items), ...(schema.minItems !== undefined ? { minItems: schema.minItems } : {}), ...(schema.maxItems !== undefined ? { maxItems: schema.maxItems } : {}), ...(schema.unique ? { uniqueItems: true } : {}) };
    case 'map':
      return { type: 'object', ...d, propertyNames: { pattern: schema.keyPattern }, additionalProperties: toJsonSchema(schema.values), ...(schema.minProperties !== undefined ? { minProperties: schema.minProperties } : {}) };
    case 'object':
      return {
        type: 'object',
        ...d,
        properties: Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, toJsonSchema(v)])),
        additionalProperties: false,
        ...(schema.required?.length ? { required: [...schema.required] } : {}),
        ...(schema.exactlyOne ? { oneOf: schema.exactlyOne.map((k) => ({ required: [k] })) } : {}),
        ...(schema.anyOf ? { anyOf: schema.anyOf.map((k) => ({ required: [k] })) } : {}),
      };
  }
}
