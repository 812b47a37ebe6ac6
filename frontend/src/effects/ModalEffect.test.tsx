import { fireEvent, render, screen } from "@testing-library/react";
import { useState } from "react";
import { describe, expect, it, vi } from "vitest";
import { ModalEffect } from "./ModalEffect";
import type { DisplayModalEffect } from "./types";

function modal(overrides: Partial<DisplayModalEffect> = {}): DisplayModalEffect {
  return {
    type: "display_modal",
    rule_id: "r3",
    action_index: 0,
    blocking: false,
    title: "Large order",
    buttons: [
      { id: "confirm", label: "Place order", style: "primary" },
      { id: "cancel", label: "Review cart", style: "secondary" },
    ],
    dismissible: false,
    message: { format: "text", content_type: "text/plain", content: "Your order is large." },
    ...overrides,
  };
}

function Host({ effect, onButton }: { effect: DisplayModalEffect; onButton?: (id: string) => void }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button type="button" onClick={() => setOpen(true)}>
        Open
      </button>
      {open ? (
        <ModalEffect
          effect={effect}
          onButton={(id) => {
            onButton?.(id);
            setOpen(false);
          }}
          onClose={() => setOpen(false)}
        />
      ) : null}
    </>
  );
}

describe("ModalEffect", () => {
  it("is an accessible modal dialog labelled by its title", () => {
    render(<ModalEffect effect={modal()} />);
    const dialog = screen.getByRole("dialog", { name: "Large order" });
    expect(dialog).toHaveAttribute("data-testid", "effect-modal");
    expect(dialog).toHaveAttribute("aria-modal", "true");
    expect(dialog).toHaveTextContent("Your order is large.");
  });

  it("moves focus into the dialog and gives it back on close", () => {
    // given a page whose Open button has focus
    render(<Host effect={modal()} />);
    const opener = screen.getByRole("button", { name: "Open" });
    opener.focus();
    // when the modal opens
    fireEvent.click(opener);
    // then the first button in the dialog has focus
    expect(screen.getByTestId("modal-button-confirm")).toHaveFocus();
    // when a button closes it
    fireEvent.click(screen.getByTestId("modal-button-cancel"));
    // then focus is back on the opener
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(opener).toHaveFocus();
  });

  it("reports the pressed button's id", () => {
    const onButton = vi.fn();
    render(<ModalEffect effect={modal()} onButton={onButton} />);
    fireEvent.click(screen.getByTestId("modal-button-confirm"));
    expect(onButton).toHaveBeenCalledWith("confirm");
    expect(screen.getByTestId("modal-button-confirm")).toHaveTextContent("Place order");
    expect(screen.getByTestId("modal-button-confirm")).toHaveClass("primary");
  });

  it("closes on Escape when dismissible", () => {
    const onClose = vi.fn();
    render(<ModalEffect effect={modal({ dismissible: true })} onClose={onClose} />);
    fireEvent.keyDown(screen.getByRole("dialog"), { key: "Escape" });
    expect(onClose).toHaveBeenCalledTimes(1);
    expect(screen.getByRole("button", { name: "Close" })).toBeInTheDocument();
  });

  it("ignores Escape and has no close button when not dismissible", () => {
    const onClose = vi.fn();
    render(<ModalEffect effect={modal({ dismissible: false })} onClose={onClose} />);
    fireEvent.keyDown(screen.getByRole("dialog"), { key: "Escape" });
    expect(onClose).not.toHaveBeenCalled();
    expect(screen.queryByRole("button", { name: "Close" })).toBeNull();
  });

  it("keeps Tab inside the dialog", () => {
    render(<ModalEffect effect={modal()} />);
    const first = screen.getByTestId("modal-button-confirm");
    const last = screen.getByTestId("modal-button-cancel");
    last.focus();
    fireEvent.keyDown(last, { key: "Tab" });
    expect(first).toHaveFocus();
    fireEvent.keyDown(first, { key: "Tab", shiftKey: true });
    expect(last).toHaveFocus();
  });

  it("renders as a non-modal preview with disabled buttons", () => {
    const onButton = vi.fn();
    render(<ModalEffect effect={modal()} onButton={onButton} preview />);
    const dialog = screen.getByTestId("effect-modal");
    expect(dialog).toHaveAttribute("aria-modal", "false");
    expect(screen.getByTestId("modal-button-confirm")).toBeDisabled();
    expect(screen.getByTestId("modal-button-confirm")).not.toHaveFocus();
  });
});
