import { describe, expect, it } from "vitest";
import {
  COMPARISON_OPERATORS,
  type ComparisonNode,
  type GroupNode,
  type Json,
  type Node,
  addChild,
  changeOperator,
  coerceScalar,
  coerceValue,
  emit,
  emptyGroup,
  mapNode,
  newComparison,
  parse,
  removeNode,
  setGroupKind,
  valueToText,
} from "./model";

const roundTrip = (json: Json) => emit(parse(json));

/** One JSONLogic example per operator the builder offers, in the shape it writes. */
const OPERATOR_EXAMPLES: Record<(typeof COMPARISON_OPERATORS)[number], Json> = {
  "==": { "==": [{ var: "user.country" }, "DE"] },
  "!=": { "!=": [{ var: "user.country" }, "US"] },
  "===": { "===": [{ var: "user.age" }, 18] },
  "!==": { "!==": [{ var: "payment.method" }, "invoice"] },
  ">": { ">": [{ var: "cart.total" }, 1000] },
  ">=": { ">=": [{ var: "cart.total" }, 50] },
  "<": { "<": [{ var: "cart.total" }, 10.5] },
  "<=": { "<=": [{ var: "user.age" }, 17] },
  in: { in: [{ var: "user.country" }, ["DE", "AT", "CH"]] },
  contains: { in: ["@example.com", { var: "user.email" }] },
  "!!": { "!!": [{ var: "user.email" }] },
};

describe("parse/emit round trip", () => {
  it.each(Object.entries(OPERATOR_EXAMPLES))("operator %s is parsed as a comparison and emitted identically", (op, json) => {
    const node = parse(json);
    expect(node.kind).toBe("comparison");
    expect((node as ComparisonNode).op).toBe(op);
    expect(emit(node)).toEqual(json);
  });

  it("covers every operator the builder offers", () => {
    expect(Object.keys(OPERATOR_EXAMPLES).sort()).toEqual([...COMPARISON_OPERATORS].sort());
  });

  it.each([
    ["null value", { "==": [{ var: "a" }, null] }],
    ["boolean value", { "===": [{ var: "flag" }, false] }],
    ["empty string value", { "!=": [{ var: "user.name" }, ""] }],
    ["negative number", { ">": [{ var: "x" }, -3.25] }],
    ["in an empty list", { in: [{ var: "x" }, []] }],
    ["in a mixed list", { in: [{ var: "x" }, [1, "a", true, null]] }],
    ["is set, bare form", { "!!": { var: "user.email" } }],
    ["root var path", { "==": [{ var: "" }, 1] }],
  ])("keeps %s", (_name, json) => {
    expect(parse(json as Json).kind).toBe("comparison");
    expect(roundTrip(json as Json)).toEqual(json);
  });

  it("round-trips nested groups", () => {
    const json: Json = {
      and: [
        { ">=": [{ var: "cart.total" }, 50] },
        { or: [{ "==": [{ var: "user.country" }, "DE"] }, { and: [] }, { or: [{ "!!": [{ var: "a" }] }] }] },
        { "!": [{ and: [{ "<": [{ var: "b" }, 1] }, { ">": [{ var: "c" }, 2] }] }] },
      ],
    };
    const tree = parse(json) as GroupNode;
    expect(tree.kind).toBe("group");
    expect(tree.group).toBe("all");
    expect((tree.children[1] as GroupNode).group).toBe("any");
    expect((tree.children[2] as GroupNode).group).toBe("not");
    expect(emit(tree)).toEqual(json);
  });

  it.each([
    ["array form", { "!": [{ "==": [{ var: "a" }, 1] }] }],
    ["bare form", { "!": { "==": [{ var: "a" }, 1] } }],
    ["bare var", { "!": { var: "a" } }],
    ["double negation", { "!": [{ "!": [{ var: "a" }] }] }],
    ["bare literal", { "!": true }],
    ["array literal inside", { "!": [[1, 2]] }],
  ])("round-trips not in %s", (_name, json) => {
    const node = parse(json as Json) as GroupNode;
    expect(node.kind).toBe("group");
    expect(node.group).toBe("not");
    expect(emit(node)).toEqual(json);
  });

  it.each([
    ["some", { some: [{ var: "cart.items" }, { "==": [{ var: "category" }, "alcohol"] }] }],
    ["all", { all: [{ var: "cart.items" }, { ">": [{ var: "price" }, 0] }] }],
    ["wasm", { wasm: ["module", { var: "x" }] }],
    ["missing", { missing: ["user.email"] }],
    ["if", { if: [{ var: "a" }, 1, 2] }],
    ["var with default", { "==": [{ var: ["$state.count", 0] }, 1] }],
    ["var in array form", { "==": [{ var: ["a"] }, 1] }],
    ["reversed comparison", { ">": [50, { var: "cart.total" }] }],
    ["between", { "<": [1, { var: "x" }, 10] }],
    ["operator value", { "==": [{ var: "a" }, { var: "b" }] }],
    ["array value for ==", { "==": [{ var: "a" }, [1]] }],
    ["in with object list", { in: [{ var: "a" }, [{ x: 1 }]] }],
    ["in field of a string", { in: [{ var: "a" }, "abc"] }],
    ["in with two vars", { in: [{ var: "a" }, { var: "b" }] }],
    ["contains with a number", { in: [1, { var: "a" }] }],
    ["and with non-array args", { and: { var: "a" } }],
    ["not with two args", { "!": [1, 2] }],
    ["not with no args", { "!": [] }],
    ["!! with two args", { "!!": [{ var: "a" }, 1] }],
    ["!! of a literal", { "!!": [1] }],
    ["== with one arg", { "==": [{ var: "a" }] }],
    ["== with non-array args", { "==": "a" }],
    ["two keys", { "==": [{ var: "a" }, 1], "!=": [{ var: "b" }, 2] }],
    ["empty object", {}],
    ["var alone", { var: "a" }],
    ["proto key", JSON.parse('{"__proto__": [{"var": "a"}, 1]}') as Json],
  ])("keeps the unsupported %s verbatim as a raw node", (_name, json) => {
    const node = parse(json as Json);
    expect(node.kind).toBe("raw");
    expect(emit(node)).toEqual(json);
  });

  it.each([
    ["true", true],
    ["false", false],
    ["null", null],
    ["number", 0],
    ["string", "yes"],
    ["array", [1, { "==": [{ var: "a" }, 1] }]],
  ])("keeps the literal %s", (_name, json) => {
    expect(parse(json as Json).kind).toBe("raw");
    expect(roundTrip(json as Json)).toEqual(json);
  });

  it("keeps raw subtrees verbatim inside builder groups", () => {
    const json: Json = {
      or: [
        { some: [{ var: "cart.items" }, { "==": [{ var: "category" }, "alcohol"] }] },
        { "!": { wasm: [1, 2] } },
        { and: [true, { ">": [{ var: "cart.total" }, 1000] }] },
      ],
    };
    const tree = parse(json) as GroupNode;
    expect(tree.children[0]!.kind).toBe("raw");
    expect(((tree.children[1] as GroupNode).children[0] as Node).kind).toBe("raw");
    expect(emit(tree)).toEqual(json);
  });

  it("round-trips the demo rules' conditions", () => {
    const conditions: Json[] = [
      { ">=": [{ var: "cart.total" }, 50] },
      { some: [{ var: "cart.items" }, { "==": [{ var: "category" }, "alcohol"] }] },
      { ">": [{ var: "cart.total" }, 1000] },
      { and: [{ "!": { missing: ["user.email"] } }, { ">=": [{ var: ["$state.checkout_count", 0] }, 1] }] },
      true,
    ];
    for (const condition of conditions) expect(roundTrip(condition)).toEqual(condition);
  });

  it("round-trips random JSON (property test, fixed seed)", () => {
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const pick = <T,>(items: T[]): T => items[Math.floor(random() * items.length)]!;
    const ops = ["and", "or", "!", "!!", "==", "!=", "===", "!==", ">", ">=", "<", "<=", "in", "var", "some", "x"];
    const gen = (depth: number): Json => {
      const roll = random();
      if (depth > 3 || roll < 0.25) return pick<Json>([null, true, false, 0, -1.5, 42, "", "DE", "a.b"]);
      if (roll < 0.35) return Array.from({ length: Math.floor(random() * 3) }, () => gen(depth + 1));
      if (roll < 0.45) return { var: pick(["a", "cart.total", ""]) };
      if (roll < 0.5) return { [pick(ops)]: gen(depth + 1), [pick(ops)]: gen(depth + 1) };
      const op = pick(ops);
      const arity = Math.floor(random() * 4);
      return { [op]: random() < 0.8 ? Array.from({ length: arity }, () => gen(depth + 1)) : gen(depth + 1) };
    };
    for (let i = 0; i < 3000; i += 1) {
      const json = gen(0);
      expect(roundTrip(json)).toEqual(json);
    }
  });
});

describe("edits", () => {
  const start: Json = { and: [{ ">=": [{ var: "cart.total" }, 50] }, { "==": [{ var: "user.country" }, "DE"] }] };

  it("adds a condition to a group", () => {
    const tree = parse(start) as GroupNode;
    const next = addChild(tree, tree.id, newComparison("user.age", ["integer"]));
    expect(emit(next)).toEqual({
      and: [{ ">=": [{ var: "cart.total" }, 50] }, { "==": [{ var: "user.country" }, "DE"] }, { "==": [{ var: "user.age" }, 0] }],
    });
    expect(emit(tree)).toEqual(start);
  });

  it("wraps a non-group root in an all group when adding next to it", () => {
    const root = parse({ ">": [{ var: "cart.total" }, 1000] });
    const next = addChild(root, root.id, emptyGroup("any"));
    expect(emit(next)).toEqual({ and: [{ ">": [{ var: "cart.total" }, 1000] }, { or: [] }] });
  });

  it("changes a group's kind", () => {
    const tree = parse(start) as GroupNode;
    expect(emit(setGroupKind(tree, tree.id, "any"))).toEqual({ or: (start as { and: Json[] }).and });
    expect(emit(setGroupKind(tree, tree.id, "not"))).toEqual({ "!": [{ and: (start as { and: Json[] }).and }] });
  });

  it("turns a one-child not into the plain negation and back", () => {
    const tree = parse({ or: [{ "==": [{ var: "a" }, 1] }] }) as GroupNode;
    expect(emit(setGroupKind(tree, tree.id, "not"))).toEqual({ "!": [{ "==": [{ var: "a" }, 1] }] });
  });

  it("removes a node and removing the root leaves an empty all group", () => {
    const tree = parse(start) as GroupNode;
    const second = tree.children[1]!;
    expect(emit(removeNode(tree, second.id))).toEqual({ and: [{ ">=": [{ var: "cart.total" }, 50] }] });
    expect(emit(removeNode(tree, tree.id))).toEqual({ and: [] });
  });

  it("changes the operator, carrying the value over in the new shape", () => {
    const node = parse({ "==": [{ var: "user.country" }, "DE"] }) as ComparisonNode;
    const asIn = changeOperator(node, "in", ["string"]);
    expect(emit(asIn)).toEqual({ in: [{ var: "user.country" }, ["DE"]] });
    const back = changeOperator(asIn, "!=", ["string"]);
    expect(emit(back)).toEqual({ "!=": [{ var: "user.country" }, "DE"] });
    const isSet = changeOperator(back, "!!", ["string"]);
    expect(emit(isSet)).toEqual({ "!!": [{ var: "user.country" }] });
    expect(emit(changeOperator(isSet, ">", ["number"]))).toEqual({ ">": [{ var: "user.country" }, 0] });
    expect(emit(changeOperator(node, "contains", ["string"]))).toEqual({ in: ["DE", { var: "user.country" }] });
  });

  it("edits a field and a value inside a nested group", () => {
    const tree = parse({ or: [{ and: [{ "==": [{ var: "a" }, 1] }] }] }) as GroupNode;
    const inner = (tree.children[0] as GroupNode).children[0]!;
    const next = mapNode(tree, inner.id, (node) => ({ ...(node as ComparisonNode), field: "cart.total", value: 99.5 }));
    expect(emit(next)).toEqual({ or: [{ and: [{ "==": [{ var: "cart.total" }, 99.5] }] }] });
  });
});

describe("typed values", () => {
  it.each([
    ["42", ["integer"], 42],
    ["10.5", ["number"], 10.5],
    ["abc", ["number"], "abc"],
    ["42", ["string"], "42"],
    ["true", ["boolean"], true],
    ["false", ["boolean"], false],
    ["7", ["string", "integer"], 7],
    ["x7", ["string", "integer"], "x7"],
    ["null", ["null", "string"], null],
    ["42", [], 42],
    ["true", [], true],
    ['"42"', [], "42"],
    ["hello", [], "hello"],
  ])("coerces %j for types %j", (text, types, expected) => {
    expect(coerceScalar(text, types)).toEqual(expected);
  });

  it("coerces a comma-separated list for in", () => {
    expect(coerceValue("DE, FR ,US", "in", ["string"])).toEqual(["DE", "FR", "US"]);
    expect(coerceValue("1, 2", "in", ["integer"])).toEqual([1, 2]);
    expect(coerceValue("", "in", ["string"])).toEqual([]);
  });

  it("keeps contains values as text", () => {
    expect(coerceValue("42", "contains", ["integer"])).toBe("42");
  });

  it("shows values as editable text", () => {
    expect(valueToText(["DE", 1, true], "in")).toBe("DE, 1, true");
    expect(valueToText(50, ">=")).toBe("50");
    expect(valueToText("DE", "==")).toBe("DE");
    expect(valueToText(null, "==")).toBe("null");
  });
});
