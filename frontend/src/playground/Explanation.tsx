import type { ExplanationNode, Json } from "../effects";

function valueText(value: Json | undefined): string {
  if (value === undefined) return "undefined";
  return JSON.stringify(value);
}

function Node({ node }: { node: ExplanationNode }) {
  const truthy = node.truthy === true;
  const label = node.expression ?? (node.op === "var" && node.var !== undefined ? node.var : node.op);
  return (
    <li className={`explanation-node ${truthy ? "truthy" : "falsy"}`}>
      <span className="explanation-mark" aria-label={truthy ? "true" : "false"}>
        {truthy ? "✓" : "✗"}
      </span>{" "}
      <code className="explanation-expression">{label}</code>
      {node.op === "var" && node.var !== undefined && node.expression !== undefined &&
      node.expression !== node.var ? (
        <span className="muted"> (var {node.var})</span>
      ) : null}
      {"result" in node ? (
        <span className="explanation-result">
          {" "}
          → <code>{valueText(node.result)}</code>
        </span>
      ) : null}
      {node.args && node.args.length > 0 ? (
        <ul>
          {node.args.map((child, index) => (
            <Node key={index} node={child} />
          ))}
        </ul>
      ) : null}
    </li>
  );
}

/** A rule's explanation tree: each node's expression, the value it saw, and ✓/✗. */
export function Explanation({ tree }: { tree: ExplanationNode | null | undefined }) {
  if (!tree || typeof tree !== "object") {
    return (
      <p data-testid="rule-explanation" className="muted">
        No explanation available for this rule.
      </p>
    );
  }
  return (
    <ul data-testid="rule-explanation" className="explanation">
      <Node node={tree} />
    </ul>
  );
}
