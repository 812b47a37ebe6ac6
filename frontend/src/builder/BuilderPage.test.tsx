import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { DEFAULT_CONFIG } from "../config";
import { type Call, fakeApi, TEST_CONFIG } from "../test/fakeApi";
import { BuilderPage } from "./BuilderPage";

const RULE_ID = "11111111-2222-3333-4444-555555555555";

const SCHEMA = {
  type: "object",
  required: ["user", "cart"],
  properties: {
    user: {
      type: "object",
      properties: {
        id: { type: ["string", "integer"] },
        country: { type: "string" },
        email: { type: "string" },
      },
    },
    cart: {
      type: "object",
      properties: {
        total: { type: "number" },
        currency: { enum: ["EUR", "USD", "GBP"] },
        items: { type: "array", items: { type: "object", properties: { sku: { type: "string" } } } },
      },
    },
  },
};

function server(condition: unknown, save: (call: Call) => { status: number; body: unknown }) {
  return (call: Call) => {
    if (call.method === "GET" && call.url === `/api/rules/${RULE_ID}/`) {
      return {
        status: 200,
        body: { id: RULE_ID, name: "Free shipping banner", entry_point: "checkout", condition, version: 3 },
      };
    }
    if (call.method === "GET" && call.url === "/api/entry-points/checkout/") {
      return { status: 200, body: { key: "checkout", context_schema: SCHEMA, critical: false } };
    }
    if (call.method === "PATCH") return save(call);
    return { status: 404, body: { error: "not_found" } };
  };
}

function preview(): unknown {
  return JSON.parse(screen.getByTestId("json-preview").textContent ?? "null");
}

async function open(condition: unknown, save: (call: Call) => { status: number; body: unknown } = () => ({ status: 500, body: {} })) {
  const { api, calls } = fakeApi(server(condition, save), "session");
  render(<BuilderPage config={TEST_CONFIG} api={api} ruleId={RULE_ID} />);
  await screen.findByTestId("json-preview");
  // Wait for the schema's fields in the field select.
  if (screen.queryAllByTestId("field-select").length > 0) {
    await waitFor(() =>
      expect(within(screen.getAllByTestId("field-select")[0]!).queryByRole("option", { name: /cart\.total/ })).not.toBeNull(),
    );
  }
  return calls;
}

describe("BuilderPage", () => {
  it("asks staff to log in, coming back to this page", () => {
    const loginUrl = `/admin/login/?next=/app/builder%3Frule%3D${RULE_ID}`;
    render(<BuilderPage config={{ ...DEFAULT_CONFIG, loginUrl }} ruleId={RULE_ID} />);
    expect(screen.getByTestId("builder-page")).toBeInTheDocument();
    expect(screen.getByTestId("login-link")).toHaveAttribute("href", loginUrl);
    expect(screen.queryByTestId("save-button")).toBeNull();
  });

  it("shows the rule's condition as a tree and its JSON unchanged", async () => {
    const condition = {
      and: [
        { ">=": [{ var: "cart.total" }, 50] },
        { some: [{ var: "cart.items" }, { "==": [{ var: "sku" }, "X"] }] },
        { "!": [{ in: [{ var: "user.country" }, ["US", "GB"]] }] },
      ],
    };
    await open(condition);
    expect(preview()).toEqual(condition);
    expect(screen.getAllByTestId("group").map((node) => node.dataset.kind)).toEqual(["all", "not"]);
    expect(screen.getAllByTestId("condition")).toHaveLength(2);
    expect(screen.getAllByTestId("raw-node")).toHaveLength(1);
    expect(screen.getAllByTestId("field-select")[0]).toHaveValue("cart.total");
    expect(screen.getAllByTestId("operator-select")[1]).toHaveValue("in");
    expect(screen.getAllByTestId("value-input")[1]).toHaveValue("US, GB");
  });

  it("edits field, operator and value with typed values, live in the preview", async () => {
    await open({ ">=": [{ var: "cart.total" }, 50] });
    // when the value is typed for a number field
    fireEvent.change(screen.getByTestId("value-input"), { target: { value: "75.5" } });
    expect(preview()).toEqual({ ">=": [{ var: "cart.total" }, 75.5] });
    // when the field becomes a string field and the value is typed
    fireEvent.change(screen.getByTestId("field-select"), { target: { value: "user.country" } });
    fireEvent.change(screen.getByTestId("operator-select"), { target: { value: "in" } });
    fireEvent.change(screen.getByTestId("value-input"), { target: { value: "DE, FR" } });
    expect(preview()).toEqual({ in: [{ var: "user.country" }, ["DE", "FR"]] });
    // when the operator becomes "is set"
    fireEvent.change(screen.getByTestId("operator-select"), { target: { value: "!!" } });
    expect(screen.queryByTestId("value-input")).toBeNull();
    expect(preview()).toEqual({ "!!": [{ var: "user.country" }] });
  });

  it("accepts a path that is not in the schema", async () => {
    await open({ "==": [{ var: "cart.total" }, 1] });
    fireEvent.change(screen.getByTestId("field-select"), { target: { value: "__custom__" } });
    fireEvent.change(screen.getByTestId("field-path-input"), { target: { value: "$state.checkout_count" } });
    fireEvent.change(screen.getByTestId("value-input"), { target: { value: "3" } });
    expect(preview()).toEqual({ "==": [{ var: "$state.checkout_count" }, 3] });
  });

  it("adds conditions and groups, changes group kinds and removes nodes", async () => {
    await open({ ">": [{ var: "cart.total" }, 1000] });
    // when a condition is added next to a single comparison, both go into an all group
    fireEvent.click(screen.getByTestId("add-condition"));
    expect(preview()).toEqual({ and: [{ ">": [{ var: "cart.total" }, 1000] }, { "==": [{ var: "user.id" }, 0] }] });
    // when a group is added and turned into "any" with one condition
    fireEvent.click(screen.getAllByTestId("add-group")[0]!);
    const groups = screen.getAllByTestId("group");
    expect(groups.map((node) => node.dataset.kind)).toEqual(["all", "all"]);
    fireEvent.change(within(groups[1]!).getByTestId("group-kind-select"), { target: { value: "any" } });
    fireEvent.click(within(screen.getAllByTestId("group")[1]!).getByTestId("add-condition"));
    expect(preview()).toEqual({
      and: [
        { ">": [{ var: "cart.total" }, 1000] },
        { "==": [{ var: "user.id" }, 0] },
        { or: [{ "==": [{ var: "user.id" }, 0] }] },
      ],
    });
    // when the inner group becomes "not"
    fireEvent.change(within(screen.getAllByTestId("group")[1]!).getByTestId("group-kind-select"), {
      target: { value: "not" },
    });
    expect(screen.getAllByTestId("group")[1]).toHaveAttribute("data-kind", "not");
    expect((preview() as { and: unknown[] }).and[2]).toEqual({ "!": [{ "==": [{ var: "user.id" }, 0] }] });
    // when the second condition is removed
    const second = screen.getAllByTestId("condition")[1]!;
    fireEvent.click(within(second).getByTestId("remove-node"));
    expect(preview()).toEqual({
      and: [{ ">": [{ var: "cart.total" }, 1000] }, { "!": [{ "==": [{ var: "user.id" }, 0] }] }],
    });
  });

  it("saves with PATCH and shows the new version", async () => {
    const calls = await open({ ">=": [{ var: "cart.total" }, 50] }, (call) => ({
      status: 200,
      body: { id: RULE_ID, name: "Free shipping banner", entry_point: "checkout", condition: (call.body as { condition: unknown }).condition, version: 4 },
    }));
    fireEvent.change(screen.getByTestId("value-input"), { target: { value: "60" } });
    fireEvent.change(screen.getByTestId("change-note"), { target: { value: "Raise the threshold" } });
    fireEvent.click(screen.getByTestId("save-button"));
    expect(await screen.findByTestId("save-status")).toHaveTextContent("Saved: version 4");
    const patch = calls.find((call) => call.method === "PATCH")!;
    expect(patch.url).toBe(`/api/rules/${RULE_ID}/`);
    expect(patch.body).toEqual({ condition: { ">=": [{ var: "cart.total" }, 60] }, change_note: "Raise the threshold" });
    expect(patch.headers["X-CSRFToken"]).toBe("csrf-test");
    expect(patch.headers.Authorization).toBeUndefined();
    expect(patch.credentials).toBe("same-origin");
  });

  it("reports a draft when the entry point needs a review (202)", async () => {
    await open({ ">=": [{ var: "cart.total" }, 50] }, () => ({ status: 202, body: { id: 17, status: "draft" } }));
    fireEvent.click(screen.getByTestId("save-button"));
    expect(await screen.findByTestId("save-status")).toHaveTextContent("Draft #17 awaits approval");
  });

  it("shows save errors with their paths", async () => {
    await open({ ">=": [{ var: "cart.total" }, 50] }, () => ({
      status: 400,
      body: { error: "invalid_rule", detail: "condition does not compile", details: [{ path: "condition.>=.1", message: "expected a number" }] },
    }));
    fireEvent.click(screen.getByTestId("save-button"));
    const error = await screen.findByTestId("save-error");
    expect(error).toHaveTextContent("invalid_rule (HTTP 400): condition does not compile");
    expect(error).toHaveTextContent("condition.>=.1 expected a number");
    expect(screen.queryByTestId("save-status")).toBeNull();
  });

  it("turns a raw node edited into a supported shape into a condition", async () => {
    await open({ and: [{ wasm: [1] }] });
    const textarea = within(screen.getByTestId("raw-node")).getByRole("textbox");
    fireEvent.change(textarea, { target: { value: '{"<": [{"var": "cart.total"}, 5]}' } });
    fireEvent.blur(textarea);
    expect(preview()).toEqual({ and: [{ "<": [{ var: "cart.total" }, 5] }] });
    expect(screen.getAllByTestId("condition")).toHaveLength(1);
  });
});
