import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { MessageContent } from "./MessageContent";
import { MessageEffect } from "./MessageEffect";
import type { DisplayMessageEffect } from "./types";

function message(overrides: Partial<DisplayMessageEffect> = {}): DisplayMessageEffect {
  return {
    type: "display_message",
    rule_id: "r1",
    action_index: 0,
    blocking: false,
    level: "info",
    placement: "banner",
    dismissible: true,
    message: { format: "text", content_type: "text/plain", content: "Hello" },
    ...overrides,
  };
}

describe("MessageEffect", () => {
  it.each([
    ["info", "status"],
    ["success", "status"],
    ["warning", "alert"],
    ["error", "alert"],
  ])("renders level %s with data-level and role %s", (level, role) => {
    // given a message of that level / when rendered
    render(<MessageEffect effect={message({ level })} />);
    // then
    const element = screen.getByTestId("effect-message");
    expect(element).toHaveAttribute("data-level", level);
    expect(element).toHaveAttribute("role", role);
    expect(element).toHaveClass(`level-${level}`);
    expect(element).toHaveTextContent("Hello");
  });

  it.each(["banner", "toast", "inline"])("renders placement %s", (placement) => {
    render(<MessageEffect effect={message({ placement })} />);
    expect(screen.getByTestId("effect-message")).toHaveAttribute("data-placement", placement);
    expect(screen.getByTestId("effect-message")).toHaveClass(`placement-${placement}`);
  });

  it("falls back to info and banner for unknown level and placement", () => {
    render(<MessageEffect effect={message({ level: "shout", placement: "sky" })} />);
    const element = screen.getByTestId("effect-message");
    expect(element).toHaveAttribute("data-level", "info");
    expect(element).toHaveAttribute("data-placement", "banner");
  });

  it("calls onDismiss from its dismiss button when dismissible", () => {
    const onDismiss = vi.fn();
    render(<MessageEffect effect={message()} onDismiss={onDismiss} />);
    fireEvent.click(screen.getByRole("button", { name: "Dismiss message" }));
    expect(onDismiss).toHaveBeenCalledTimes(1);
  });

  it("has no dismiss button when not dismissible", () => {
    render(<MessageEffect effect={message({ dismissible: false })} onDismiss={vi.fn()} />);
    expect(screen.queryByRole("button", { name: "Dismiss message" })).toBeNull();
  });

  it("renders the server's sanitised HTML as markup", () => {
    // given text/html content from the server
    const effect = message({
      message: {
        format: "html",
        content_type: "text/html",
        content: "<p>Good news, <strong>Ada</strong>: free shipping.</p>",
      },
    });
    // when
    render(<MessageEffect effect={effect} />);
    // then the markup is real elements
    const strong = screen.getByTestId("effect-message").querySelector("strong");
    expect(strong).not.toBeNull();
    expect(strong).toHaveTextContent("Ada");
  });

  it("renders text/plain content as text, never as markup", () => {
    const evil = '<img src=x onerror="alert(1)"><b>bold</b>';
    render(
      <MessageEffect
        effect={message({ message: { format: "text", content_type: "text/plain", content: evil } })}
      />,
    );
    const element = screen.getByTestId("effect-message");
    expect(element.querySelector("img")).toBeNull();
    expect(element.querySelector("b")).toBeNull();
    expect(element).toHaveTextContent(evil);
  });

  it("shows a placeholder when the server could not render the template", () => {
    render(<MessageEffect effect={message({ message: null, render_error: "missing" })} />);
    expect(screen.getByTestId("effect-message")).toHaveTextContent("This message could not be shown.");
  });
});

describe("MessageContent", () => {
  it("renders a JSON object as a key/value list of text", () => {
    // given JSON content whose values contain markup (e.g. copied from the context)
    render(
      <div data-testid="box">
        <MessageContent
          message={{
            format: "json",
            content_type: "application/json",
            content: { title: "Loyalty", customer: "<script>alert(1)</script>", count: 3 },
          }}
        />
      </div>,
    );
    // then each pair is shown as text
    const box = screen.getByTestId("box");
    expect(box.querySelector("script")).toBeNull();
    const terms = Array.from(box.querySelectorAll("dt")).map((node) => node.textContent);
    const values = Array.from(box.querySelectorAll("dd")).map((node) => node.textContent);
    expect(terms).toEqual(["title", "customer", "count"]);
    expect(values).toEqual(["Loyalty", "<script>alert(1)</script>", "3"]);
  });

  it("parses JSON content sent as a string", () => {
    render(
      <div data-testid="box">
        <MessageContent
          message={{ format: "json", content_type: "application/json", content: '{"a": "<i>x</i>"}' }}
        />
      </div>,
    );
    const box = screen.getByTestId("box");
    expect(box.querySelector("i")).toBeNull();
    expect(box.querySelector("dd")).toHaveTextContent("<i>x</i>");
  });

  it("renders a JSON list as list items", () => {
    render(
      <div data-testid="box">
        <MessageContent
          message={{ format: "json", content_type: "application/json", content: ["a", { b: 1 }] }}
        />
      </div>,
    );
    const items = Array.from(screen.getByTestId("box").querySelectorAll("li")).map((li) => li.textContent);
    expect(items).toEqual(["a", '{"b":1}']);
  });

  it("does not treat HTML-looking content as markup unless the content type says text/html", () => {
    render(
      <div data-testid="box">
        <MessageContent message={{ format: "markdown", content_type: "text/markdown", content: "<u>x</u>" }} />
      </div>,
    );
    expect(screen.getByTestId("box").querySelector("u")).toBeNull();
    expect(screen.getByTestId("box")).toHaveTextContent("<u>x</u>");
  });
});
