import { act, render, screen, waitFor } from "@testing-library/react";
import { useState } from "react";
import { describe, expect, it } from "vitest";
import type { Api } from "../api";
import { fakeApi } from "../test/fakeApi";
import type { Decision } from "./types";
import { useDecision } from "./useDecision";

function answer(total: number): Decision {
  return {
    execution_id: `e-${total}`,
    entry_point: "checkout",
    outcome: "matched",
    matched_rules: [],
    effects: [],
    blocking: total > 100,
  };
}

let setTotal: (total: number) => void = () => undefined;
let refreshNow: () => Promise<Decision | null> = async () => null;

function Probe({ api, debounceMs }: { api: Api; debounceMs: number }) {
  const [total, set] = useState(10);
  setTotal = set;
  const state = useDecision("checkout", { cart: { total } }, { api, debounceMs });
  refreshNow = state.refresh;
  return (
    <p data-testid="probe">
      {state.decision?.execution_id ?? "none"}|{state.current ? "current" : "stale"}|
      {state.error?.error ?? ""}
    </p>
  );
}

describe("useDecision", () => {
  it("asks at once on mount and is current once answered", async () => {
    const { api, calls } = fakeApi((call) => ({
      status: 200,
      body: answer((call.body as { context: { cart: { total: number } } }).context.cart.total),
    }));
    render(<Probe api={api} debounceMs={50} />);
    await waitFor(() => expect(screen.getByTestId("probe")).toHaveTextContent("e-10|current|"));
    expect(calls).toHaveLength(1);
    expect(calls[0]!.body).toEqual({ entry_point: "checkout", context: { cart: { total: 10 } } });
  });

  it("debounces context changes into one request for the last context", async () => {
    const { api, calls } = fakeApi((call) => ({
      status: 200,
      body: answer((call.body as { context: { cart: { total: number } } }).context.cart.total),
    }));
    render(<Probe api={api} debounceMs={40} />);
    await waitFor(() => expect(calls).toHaveLength(1));
    // when three changes arrive quickly
    act(() => setTotal(20));
    act(() => setTotal(30));
    act(() => setTotal(40));
    // then the old decision is no longer current
    expect(screen.getByTestId("probe")).toHaveTextContent("e-10|stale|");
    // and one request goes out, for the last context
    await waitFor(() => expect(screen.getByTestId("probe")).toHaveTextContent("e-40|current|"));
    expect(calls).toHaveLength(2);
  });

  it("drops an answer that arrives after a newer request was sent", async () => {
    const resolvers: Array<() => void> = [];
    const { api } = fakeApi(
      (call) =>
        new Promise((resolve) => {
          const total = (call.body as { context: { cart: { total: number } } }).context.cart.total;
          resolvers.push(() => resolve({ status: 200, body: answer(total) }));
        }),
    );
    render(<Probe api={api} debounceMs={0} />);
    await waitFor(() => expect(resolvers).toHaveLength(1));
    act(() => setTotal(99));
    await waitFor(() => expect(resolvers).toHaveLength(2));
    // when the newer answer arrives first, then the older one
    await act(async () => resolvers[1]!());
    await act(async () => resolvers[0]!());
    // then the newer one stays
    expect(screen.getByTestId("probe")).toHaveTextContent("e-99|current|");
  });

  it("exposes errors in the API error shape and is then not current", async () => {
    const { api } = fakeApi(() => ({
      status: 400,
      body: { error: "invalid_context", details: [{ path: "cart.total", message: "is required" }] },
    }));
    render(<Probe api={api} debounceMs={0} />);
    await waitFor(() => expect(screen.getByTestId("probe")).toHaveTextContent("none|stale|invalid_context"));
  });

  it("refresh() asks again at once and resolves with the new decision", async () => {
    let n = 0;
    const { api } = fakeApi(() => {
      n += 1;
      return { status: 200, body: { ...answer(10), execution_id: `run-${n}` } };
    });
    render(<Probe api={api} debounceMs={1000} />);
    await waitFor(() => expect(screen.getByTestId("probe")).toHaveTextContent("run-1|current|"));
    let result: Decision | null = null;
    await act(async () => {
      result = await refreshNow();
    });
    expect(result).toEqual(expect.objectContaining({ execution_id: "run-2" }));
    expect(screen.getByTestId("probe")).toHaveTextContent("run-2|current|");
  });
});
