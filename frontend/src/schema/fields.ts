/** Flatten an entry point's JSON Schema into the dotted `var` paths a condition can use. */

export interface SchemaField {
  path: string;
  /** JSON Schema type names ("string", "number", "integer", "boolean", "array", "object", "null"). */
  types: string[];
  enum?: unknown[];
  required: boolean;
  description?: string;
}

type SchemaObject = Record<string, unknown>;

function isObject(value: unknown): value is SchemaObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function typeOfValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function typesOf(schema: SchemaObject): string[] {
  const declared = schema.type;
  if (typeof declared === "string") return [declared];
  if (Array.isArray(declared)) return declared.filter((item): item is string => typeof item === "string");
  if (Array.isArray(schema.enum)) return [...new Set(schema.enum.map(typeOfValue))];
  if ("const" in schema) return [typeOfValue(schema.const)];
  if (isObject(schema.properties)) return ["object"];
  return [];
}

/**
 * Every property reachable through nested `properties`, depth first, as dotted paths. Objects
 * with properties are walked rather than listed; array items are not (a `var` cannot reach
 * into every element; that is what `some`/`all` are for).
 */
export function flattenSchema(schema: unknown, prefix = "", parentRequired = true): SchemaField[] {
  if (!isObject(schema) || !isObject(schema.properties)) return [];
  const required = new Set(
    Array.isArray(schema.required) ? schema.required.filter((x) => typeof x === "string") : [],
  );
  const fields: SchemaField[] = [];
  for (const [name, child] of Object.entries(schema.properties)) {
    if (!isObject(child)) continue;
    const path = prefix ? `${prefix}.${name}` : name;
    const isRequired = parentRequired && required.has(name);
    if (isObject(child.properties)) {
      fields.push(...flattenSchema(child, path, isRequired));
      continue;
    }
    const field: SchemaField = { path, types: typesOf(child), required: isRequired };
    if (Array.isArray(child.enum)) field.enum = child.enum;
    if (typeof child.description === "string") field.description = child.description;
    fields.push(field);
  }
  return fields;
}

/** The schema's first example, or an empty object. */
export function schemaExample(schema: unknown): unknown {
  if (isObject(schema) && Array.isArray(schema.examples) && schema.examples.length > 0) {
    return schema.examples[0];
  }
  return {};
}
