import { fireEvent, render, screen, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { Effects } from "./Effects";
import type { Decision } from "./types";

const decision: Decision = {
  execution_id: "e1",
  entry_point: "checkout",
  outcome: "matched",
  matched_rules: [],
  blocking: false,
  effects: [
    {
      type: "display_message",
      rule_id: "a",
      action_index: 0,
      blocking: false,
      level: "success",
      placement: "banner",
      dismissible: true,
      message: { format: "text", content_type: "text/plain", content: "Banner" },
    },
    {
      type: "display_message",
      rule_id: "b",
      action_index: 1,
      blocking: false,
      level: "info",
      placement: "toast",
      dismissible: true,
      message: { format: "text", content_type: "text/plain", content: "Toast" },
    },
    {
      type: "display_modal",
      rule_id: "c",
      action_index: 0,
      blocking: false,
      title: "First",
      dismissible: false,
      buttons: [{ id: "ok", label: "OK" }],
    },
    {
      type: "display_modal",
      rule_id: "d",
      action_index: 0,
      blocking: false,
      title: "Second",
      dismissible: false,
      buttons: [{ id: "ok2", label: "OK" }],
    },
    { type: "webhook_sent_to_the_future", rule_id: "e", action_index: 0, blocking: false },
  ],
};

describe("Effects", () => {
  it("renders messages by placement and one modal at a time", () => {
    const onModalButton = vi.fn();
    render(<Effects decision={decision} onModalButton={onModalButton} />);
    const container = screen.getByTestId("effects");
    expect(within(container).getAllByTestId("effect-message").map((node) => node.dataset.placement)).toEqual([
      "banner",
      "toast",
    ]);
    expect(screen.getAllByRole("dialog")).toHaveLength(1);
    expect(screen.getByRole("dialog", { name: "First" })).toBeInTheDocument();
    // when the first modal is answered the next one opens
    fireEvent.click(screen.getByTestId("modal-button-ok"));
    expect(onModalButton).toHaveBeenCalledWith(expect.objectContaining({ rule_id: "c" }), "ok");
    expect(screen.getByRole("dialog", { name: "Second" })).toBeInTheDocument();
    fireEvent.click(screen.getByTestId("modal-button-ok2"));
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  it("keeps a dismissed message closed when the next decision repeats it", () => {
    const { rerender } = render(<Effects decision={decision} />);
    fireEvent.click(screen.getAllByRole("button", { name: "Dismiss message" })[0]!);
    rerender(<Effects decision={{ ...decision, execution_id: "e2" }} />);
    expect(screen.getAllByTestId("effect-message").map((node) => node.textContent)).toEqual([
      expect.stringContaining("Toast"),
    ]);
  });

  it("shows every effect in read-only mode, modals as previews", () => {
    render(<Effects decision={decision} readOnly />);
    expect(screen.getAllByTestId("effect-modal")).toHaveLength(2);
    expect(screen.getAllByTestId("effect-modal")[0]).toHaveAttribute("aria-modal", "false");
    expect(screen.queryByRole("button", { name: "Dismiss message" })).toBeNull();
  });

  it("renders an empty container without a decision", () => {
    render(<Effects decision={null} />);
    expect(screen.getByTestId("effects")).toBeEmptyDOMElement();
  });
});
