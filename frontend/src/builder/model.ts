/**
 * The condition builder's model: JSONLogic <-> a tree of groups and comparisons.
 *
 * `parse` recognises only shapes it can write back byte for byte; everything else becomes a
 * `raw` node that keeps its JSON verbatim. So `emit(parse(x))` deep-equals `x` for every JSON
 * value `x`, and only the parts a user edits change.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type GroupKind = "all" | "any" | "not";

/** Operators the builder offers. `contains` is `{"in": [text, field]}`, `!!` is "is set". */
export const COMPARISON_OPERATORS = [
  "==",
  "!=",
  "===",
  "!==",
  ">",
  ">=",
  "<",
  "<=",
  "in",
  "contains",
  "!!",
] as const;
export type ComparisonOp = (typeof COMPARISON_OPERATORS)[number];

export const OPERATOR_LABELS: Record<ComparisonOp, string> = {
  "==": "equals (==)",
  "!=": "does not equal (!=)",
  "===": "is exactly (===)",
  "!==": "is not exactly (!==)",
  ">": "greater than (>)",
  ">=": "at least (>=)",
  "<": "less than (<)",
  "<=": "at most (<=)",
  in: "is one of (in list)",
  contains: "contains text (in)",
  "!!": "is set (!!)",
};

const BINARY = new Set<string>(["==", "!=", "===", "!==", ">", ">=", "<", "<="]);

export interface GroupNode {
  kind: "group";
  id: string;
  group: GroupKind;
  children: Node[];
  /** `{"!": x}` rather than `{"!": [x]}` (kept to write back what was read). */
  bare?: boolean;
}

export interface ComparisonNode {
  kind: "comparison";
  id: string;
  op: ComparisonOp;
  field: string;
  /** A primitive; for `in` an array of primitives; unused for `!!`. */
  value: Json;
  /** `{"!!": {"var": f}}` rather than `{"!!": [{"var": f}]}`. */
  bare?: boolean;
}

export interface RawNode {
  kind: "raw";
  id: string;
  json: Json;
}

export type Node = GroupNode | ComparisonNode | RawNode;

let counter = 0;
export function newId(): string {
  counter += 1;
  return `n${counter}`;
}

function isPlainObject(value: unknown): value is { [key: string]: Json } {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function isPrimitive(value: unknown): value is string | number | boolean | null {
  return (
    value === null ||
    typeof value === "string" ||
    typeof value === "boolean" ||
    (typeof value === "number" && Number.isFinite(value))
  );
}

/** The single operator of `{op: args}`, or null when `value` is not such an object. */
function soleOperator(value: Json): [string, Json] | null {
  if (!isPlainObject(value)) return null;
  const keys = Object.keys(value);
  if (keys.length !== 1) return null;
  const key = keys[0]!;
  return [key, value[key]!];
}

/** `{"var": "<path>"}` exactly (no default, no array form) -> the path. */
function varPath(value: Json): string | null {
  const sole = soleOperator(value);
  if (!sole || sole[0] !== "var" || typeof sole[1] !== "string") return null;
  return sole[1];
}

function raw(json: Json): RawNode {
  return { kind: "raw", id: newId(), json };
}

/** JSONLogic -> tree. Never throws; unsupported shapes become raw nodes. */
export function parse(json: Json): Node {
  const sole = soleOperator(json);
  if (!sole) return raw(json);
  const [op, args] = sole;

  if (op === "and" || op === "or") {
    if (!Array.isArray(args)) return raw(json);
    return {
      kind: "group",
      id: newId(),
      group: op === "and" ? "all" : "any",
      children: args.map(parse),
    };
  }

  if (op === "!") {
    if (Array.isArray(args)) {
      if (args.length !== 1) return raw(json);
      return { kind: "group", id: newId(), group: "not", children: [parse(args[0]!)] };
    }
    return { kind: "group", id: newId(), group: "not", children: [parse(args)], bare: true };
  }

  if (op === "!!") {
    const target = Array.isArray(args) ? (args.length === 1 ? args[0]! : undefined) : args;
    const field = target === undefined ? null : varPath(target);
    if (field === null) return raw(json);
    const node: ComparisonNode = { kind: "comparison", id: newId(), op: "!!", field, value: null };
    if (!Array.isArray(args)) node.bare = true;
    return node;
  }

  if (!Array.isArray(args) || args.length !== 2) return raw(json);
  const [left, right] = args as [Json, Json];

  if (BINARY.has(op)) {
    const field = varPath(left);
    if (field === null || !isPrimitive(right)) return raw(json);
    return { kind: "comparison", id: newId(), op: op as ComparisonOp, field, value: right };
  }

  if (op === "in") {
    const field = varPath(left);
    if (field !== null && Array.isArray(right) && right.every(isPrimitive)) {
      return { kind: "comparison", id: newId(), op: "in", field, value: right };
    }
    const haystack = varPath(right);
    if (haystack !== null && typeof left === "string") {
      return { kind: "comparison", id: newId(), op: "contains", field: haystack, value: left };
    }
  }
  return raw(json);
}

/** Tree -> JSONLogic. */
export function emit(node: Node): Json {
  switch (node.kind) {
    case "raw":
      return node.json;
    case "group": {
      const children = node.children.map(emit);
      if (node.group === "all") return { and: children };
      if (node.group === "any") return { or: children };
      // "not" negates one condition; with several it negates them all together (not all of).
      const inner: Json = children.length === 1 ? children[0]! : { and: children };
      // The bare form only when it reads back the same: an array would be taken as the args.
      if (node.bare && !Array.isArray(inner)) return { "!": inner };
      return { "!": [inner] };
    }
    case "comparison": {
      const field: Json = { var: node.field };
      if (node.op === "!!") return node.bare ? { "!!": field } : { "!!": [field] };
      if (node.op === "contains") return { in: [node.value, field] };
      return { [node.op]: [field, node.value] };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Edits (pure: each returns a new tree).

export function mapNode(root: Node, id: string, change: (node: Node) => Node): Node {
  if (root.id === id) return change(root);
  if (root.kind !== "group") return root;
  let changed = false;
  const children = root.children.map((child) => {
    const next = mapNode(child, id, change);
    if (next !== child) changed = true;
    return next;
  });
  return changed ? { ...root, children } : root;
}

/** Remove the node `id`; removing the root leaves an empty `all` group. */
export function removeNode(root: Node, id: string): Node {
  if (root.id === id) return emptyGroup("all");
  if (root.kind !== "group") return root;
  const children = root.children
    .filter((child) => child.id !== id)
    .map((child) => removeNode(child, id));
  return { ...root, children };
}

/**
 * Add `child` to the group `groupId`. When `groupId` is the root and the root is not a group,
 * the root becomes an `all` group holding the old root and the new child.
 */
export function addChild(root: Node, groupId: string, child: Node): Node {
  if (root.id === groupId && root.kind !== "group") {
    return { kind: "group", id: newId(), group: "all", children: [root, child] };
  }
  return mapNode(root, groupId, (node) =>
    node.kind === "group" ? { ...node, children: [...node.children, child] } : node,
  );
}

export function emptyGroup(group: GroupKind): GroupNode {
  return { kind: "group", id: newId(), group, children: [] };
}

export function setGroupKind(root: Node, id: string, group: GroupKind): Node {
  return mapNode(root, id, (node) => (node.kind === "group" ? { ...node, group } : node));
}

// ---------------------------------------------------------------------------------------------
// Values typed by the field's JSON Schema types.

/** A scalar default for a field of these types. */
export function defaultValue(types: string[]): Json {
  if (types.includes("number") || types.includes("integer")) return 0;
  if (types.includes("boolean") && !types.includes("string")) return true;
  return "";
}

/** A new comparison on `field`. */
export function newComparison(field: string, types: string[]): ComparisonNode {
  return { kind: "comparison", id: newId(), op: "==", field, value: defaultValue(types) };
}

/** The text a value is edited as. */
export function valueToText(value: Json, op: ComparisonOp): string {
  if (op === "in" && Array.isArray(value)) return value.map((item) => scalarText(item)).join(", ");
  return scalarText(value);
}

function scalarText(value: Json): string {
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/**
 * Text -> a value of the field's type. Numbers for number/integer fields when the text is a
 * number, booleans for boolean fields; for a field of unknown type, a JSON literal when the text
 * is one (42, true, null, "quoted"), else the text itself.
 */
export function coerceScalar(text: string, types: string[]): Json {
  const trimmed = text.trim();
  const numeric = trimmed !== "" && Number.isFinite(Number(trimmed));
  if ((types.includes("number") || types.includes("integer")) && numeric) return Number(trimmed);
  if (types.includes("boolean") && (trimmed === "true" || trimmed === "false")) {
    return trimmed === "true";
  }
  if (types.includes("null") && trimmed === "null") return null;
  if (types.length === 0) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (isPrimitive(parsed)) return parsed;
    } catch {
      // not a JSON literal: a plain string
    }
  }
  return text;
}

/** Text -> the value of a comparison with `op` (a list for `in`). */
export function coerceValue(text: string, op: ComparisonOp, types: string[]): Json {
  if (op === "in") {
    if (text.trim() === "") return [];
    return text.split(",").map((part) => coerceScalar(part.trim(), types));
  }
  if (op === "contains") return text;
  return coerceScalar(text, types);
}

/** Change a comparison's operator, carrying its value over in the new operator's shape. */
export function changeOperator(node: ComparisonNode, op: ComparisonOp, types: string[]): ComparisonNode {
  let value: Json = node.value;
  if (op === "in") {
    value = Array.isArray(value) ? value : node.op === "!!" ? [] : [value];
  } else if (op === "!!") {
    value = null;
  } else if (op === "contains") {
    value = Array.isArray(value) ? String(value[0] ?? "") : value === null ? "" : scalarText(value);
  } else if (Array.isArray(value)) {
    value = value.length > 0 ? value[0]! : defaultValue(types);
  } else if (node.op === "!!") {
    value = defaultValue(types);
  }
  const next: ComparisonNode = { kind: "comparison", id: node.id, op, field: node.field, value };
  return next;
}
