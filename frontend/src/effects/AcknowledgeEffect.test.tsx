import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { fakeApi } from "../test/fakeApi";
import { AcknowledgeEffect } from "./AcknowledgeEffect";
import type { UserAcknowledgeEffect } from "./types";

function ack(overrides: Partial<UserAcknowledgeEffect> = {}): UserAcknowledgeEffect {
  return {
    type: "user_acknowledge",
    rule_id: "r2",
    action_index: 0,
    blocking: true,
    ack_key: "age-check-v1",
    title: "Age confirmation",
    acknowledged: false,
    message: {
      format: "markdown",
      content_type: "text/html",
      content: "<p>Your cart contains <strong>age-restricted items</strong>.</p>",
    },
    ...overrides,
  };
}

describe("AcknowledgeEffect", () => {
  it("shows the terms as the server's HTML with an Accept button", () => {
    const { api } = fakeApi(() => ({ status: 201, body: {} }));
    render(<AcknowledgeEffect effect={ack()} executionId="e1" api={api} />);
    const box = screen.getByTestId("effect-acknowledge");
    expect(box).toHaveTextContent("Age confirmation");
    expect(box.querySelector("strong")).toHaveTextContent("age-restricted items");
    expect(screen.getByTestId("acknowledge-accept")).toBeEnabled();
  });

  it("posts the acknowledgement with the publishable key, then asks the server again", async () => {
    // given
    const order: string[] = [];
    const { api, calls } = fakeApi(() => {
      order.push("post");
      return {
        status: 201,
        body: { ack_key: "age-check-v1", acknowledged: true, accepted_at: "2025-01-01T00:00:00Z" },
      };
    });
    let refreshed = 0;
    const onAccepted = async () => {
      order.push("refresh");
      refreshed += 1;
    };
    render(<AcknowledgeEffect effect={ack()} executionId="exec-1" api={api} onAccepted={onAccepted} />);
    // when
    fireEvent.click(screen.getByTestId("acknowledge-accept"));
    // then the POST went out first, then the refresh
    await waitFor(() => expect(refreshed).toBe(1));
    expect(order).toEqual(["post", "refresh"]);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.url).toBe("/api/rules/engine/acknowledgements/");
    expect(calls[0]!.method).toBe("POST");
    expect(calls[0]!.headers.Authorization).toBe("Api-Key vk_pk_test");
    expect(calls[0]!.body).toEqual({ execution_id: "exec-1", ack_key: "age-check-v1" });
  });

  it("stays unaccepted until the server's decision says acknowledged", async () => {
    // given the refresh still answers "not acknowledged"
    const { api } = fakeApi(() => ({ status: 201, body: { ack_key: "age-check-v1", acknowledged: true } }));
    const { rerender } = render(
      <AcknowledgeEffect effect={ack()} executionId="e1" api={api} onAccepted={async () => undefined} />,
    );
    fireEvent.click(screen.getByTestId("acknowledge-accept"));
    // then the component does not unblock itself
    await screen.findByText("Not confirmed by the server yet.");
    expect(screen.getByTestId("effect-acknowledge")).toHaveAttribute("data-acknowledged", "false");
    // when the next decision carries acknowledged: true
    rerender(
      <AcknowledgeEffect
        effect={ack({ acknowledged: true, blocking: false })}
        executionId="e2"
        api={api}
      />,
    );
    // then
    expect(screen.getByTestId("effect-acknowledge")).toHaveAttribute("data-acknowledged", "true");
    expect(screen.getByTestId("effect-acknowledge")).toHaveTextContent("✓ Accepted");
    expect(screen.queryByTestId("acknowledge-accept")).toBeNull();
  });

  it("shows the error and does not refresh when the POST fails", async () => {
    const { api } = fakeApi(() => ({
      status: 400,
      body: { error: "invalid", details: [{ path: "execution_id", message: "unknown execution" }] },
    }));
    let refreshed = 0;
    render(
      <AcknowledgeEffect
        effect={ack()}
        executionId="e1"
        api={api}
        onAccepted={() => {
          refreshed += 1;
        }}
      />,
    );
    fireEvent.click(screen.getByTestId("acknowledge-accept"));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("invalid");
    expect(alert).toHaveTextContent("execution_id unknown execution");
    expect(refreshed).toBe(0);
    expect(screen.getByTestId("acknowledge-accept")).toBeEnabled();
  });

  it("cannot accept in read-only mode", () => {
    render(<AcknowledgeEffect effect={ack()} executionId={null} readOnly />);
    expect(screen.getByTestId("acknowledge-accept")).toBeDisabled();
  });
});
