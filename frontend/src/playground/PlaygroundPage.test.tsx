import { fireEvent, render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { DEFAULT_CONFIG } from "../config";
import { type Call, fakeApi, TEST_CONFIG } from "../test/fakeApi";
import { PlaygroundPage } from "./PlaygroundPage";

const EXAMPLE = { user: { id: 42, name: "<b>Ada</b>" }, cart: { total: 120.5 } };

const ENTRY_POINTS = {
  count: 2,
  next: null,
  results: [
    { key: "order.created", description: "Orders", context_schema: { type: "object", properties: { order: { type: "object", properties: { id: { type: "string" } } } } } },
    {
      key: "checkout",
      description: "Checkout page",
      critical: true,
      context_schema: {
        type: "object",
        required: ["cart"],
        properties: { cart: { type: "object", required: ["total"], properties: { total: { type: "number" } } } },
        examples: [EXAMPLE],
      },
    },
  ],
};

const DRY_RUN = {
  execution_id: null,
  entry_point: "checkout",
  outcome: "matched",
  matched_rules: [{ id: "r1", name: "Free shipping banner", version: 2, priority: 10 }],
  effects: [
    {
      type: "display_message",
      rule_id: "r1",
      action_index: 0,
      blocking: false,
      level: "success",
      placement: "banner",
      dismissible: true,
      message: { format: "html", content_type: "text/html", content: "<p>Free <em>shipping</em></p>" },
    },
    {
      type: "user_acknowledge",
      rule_id: "r2",
      action_index: 0,
      blocking: true,
      ack_key: "age-check-v1",
      title: "Age confirmation",
      acknowledged: false,
    },
  ],
  blocking: true,
  duration_ms: 2,
  dry_run: true,
  rules: [
    {
      id: "r1",
      name: "Free shipping banner",
      version: 2,
      priority: 10,
      outcome: "matched",
      explanation: {
        op: ">=",
        expression: "cart.total >= 50",
        result: true,
        truthy: true,
        args: [
          { op: "var", var: "cart.total", expression: "cart.total", result: 120.5, truthy: true, args: [] },
          { op: "literal", expression: "50", result: 50, truthy: true, args: [] },
        ],
      },
    },
    { id: "r3", name: "Large order", version: 1, priority: 30, outcome: "not_matched" },
  ],
};

function server(execute: (call: Call) => { status: number; body: unknown }) {
  return (call: Call) => {
    if (call.url === "/api/entry-points/") return { status: 200, body: ENTRY_POINTS };
    if (call.url === "/api/rules/engine/execute/") return execute(call);
    return { status: 404, body: { error: "not_found" } };
  };
}

describe("PlaygroundPage", () => {
  it("shows a login link to anonymous users", () => {
    render(<PlaygroundPage config={DEFAULT_CONFIG} />);
    expect(screen.getByTestId("playground-page")).toBeInTheDocument();
    expect(screen.getByTestId("login-link")).toHaveAttribute("href", "/admin/login/?next=/app/playground");
    expect(screen.queryByTestId("dry-run-button")).toBeNull();
  });

  it("shows a login link to users who are not staff", () => {
    render(<PlaygroundPage config={{ ...TEST_CONFIG, user: { username: "bob", isStaff: false } }} />);
    expect(screen.getByTestId("login-link")).toBeInTheDocument();
    expect(screen.getByTestId("playground-page")).toHaveTextContent("bob");
  });

  it("prefills the context from the schema's first example and shows the schema", async () => {
    const { api, calls } = fakeApi(server(() => ({ status: 200, body: DRY_RUN })), "session");
    render(<PlaygroundPage config={TEST_CONFIG} api={api} />);
    const select = await screen.findByTestId("entry-point-select");
    expect(select).toHaveValue("checkout");
    expect(JSON.parse((screen.getByTestId("context-editor") as HTMLTextAreaElement).value)).toEqual(EXAMPLE);
    expect(screen.getByTestId("schema-view")).toHaveTextContent("cart.total");
    expect(calls[0]!.credentials).toBe("same-origin");
    expect(calls[0]!.headers.Authorization).toBeUndefined();
    // when another entry point is picked
    fireEvent.change(select, { target: { value: "order.created" } });
    expect(JSON.parse((screen.getByTestId("context-editor") as HTMLTextAreaElement).value)).toEqual({});
    expect(screen.getByTestId("schema-view")).toHaveTextContent("order.id");
  });

  it("dry-runs with the session and shows matched rules, effects and explanations", async () => {
    const { api, calls } = fakeApi(server(() => ({ status: 200, body: DRY_RUN })), "session");
    render(<PlaygroundPage config={TEST_CONFIG} api={api} />);
    await screen.findByTestId("entry-point-select");
    fireEvent.click(screen.getByTestId("dry-run-button"));
    const result = await screen.findByTestId("dry-run-result");
    // the request
    const execute = calls.find((call) => call.url === "/api/rules/engine/execute/")!;
    expect(execute.body).toEqual({ entry_point: "checkout", context: EXAMPLE, dry_run: true });
    expect(execute.headers["X-CSRFToken"]).toBe("csrf-test");
    expect(execute.credentials).toBe("same-origin");
    // the result
    expect(screen.getAllByTestId("matched-rule").map((node) => node.textContent)).toEqual([
      expect.stringContaining("Free shipping banner"),
    ]);
    expect(within(result).getByTestId("effect-message").querySelector("em")).toHaveTextContent("shipping");
    expect(within(result).getByTestId("acknowledge-accept")).toBeDisabled();
    expect(screen.getAllByTestId("rule-result").map((node) => node.dataset.outcome)).toEqual(["matched", "not_matched"]);
    const explanations = screen.getAllByTestId("rule-explanation");
    expect(explanations).toHaveLength(2);
    expect(explanations[0]).toHaveTextContent("✓ cart.total >= 50 → true");
    expect(explanations[0]).toHaveTextContent("cart.total → 120.5");
    expect(explanations[1]).toHaveTextContent("No explanation available");
  });

  it("lists the 400 details of a rejected context", async () => {
    const { api } = fakeApi(
      server(() => ({
        status: 400,
        body: {
          error: "invalid_context",
          details: [
            { path: "cart.total", message: "'x' is not of type 'number'" },
            { path: "user", message: "'user' is a required property" },
          ],
        },
      })),
      "session",
    );
    render(<PlaygroundPage config={TEST_CONFIG} api={api} />);
    await screen.findByTestId("entry-point-select");
    fireEvent.click(screen.getByTestId("dry-run-button"));
    const error = await screen.findByTestId("dry-run-error");
    expect(error).toHaveTextContent("invalid_context");
    expect(within(error).getAllByRole("listitem").map((item) => item.textContent)).toEqual([
      "cart.total 'x' is not of type 'number'",
      "user 'user' is a required property",
    ]);
    expect(screen.queryByTestId("dry-run-result")).toBeNull();
  });

  it("reports a context that is not JSON without calling the server", async () => {
    const { api, calls } = fakeApi(server(() => ({ status: 200, body: DRY_RUN })), "session");
    render(<PlaygroundPage config={TEST_CONFIG} api={api} />);
    await screen.findByTestId("entry-point-select");
    fireEvent.change(screen.getByTestId("context-editor"), { target: { value: "{nope" } });
    fireEvent.click(screen.getByTestId("dry-run-button"));
    expect(await screen.findByTestId("dry-run-error")).toHaveTextContent("not valid JSON");
    expect(calls.filter((call) => call.url === "/api/rules/engine/execute/")).toHaveLength(0);
  });

  it("renders a result without per-rule explanations", async () => {
    const { rules: _rules, ...withoutRules } = DRY_RUN;
    const { api } = fakeApi(server(() => ({ status: 200, body: withoutRules })), "session");
    render(<PlaygroundPage config={TEST_CONFIG} api={api} />);
    await screen.findByTestId("entry-point-select");
    fireEvent.click(screen.getByTestId("dry-run-button"));
    expect(await screen.findByTestId("dry-run-result")).toHaveTextContent("did not explain");
    expect(screen.queryAllByTestId("rule-result")).toHaveLength(0);
  });
});
