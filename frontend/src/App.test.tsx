import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { App, routeFor } from "./App";
import { DEFAULT_CONFIG } from "./config";

describe("routing", () => {
  it.each([
    ["/app/", "checkout"],
    ["/app", "checkout"],
    ["/app/playground", "playground"],
    ["/app/playground/", "playground"],
    ["/app/builder", "builder"],
    ["/app/elsewhere", "not-found"],
  ])("%s -> %s", (path, route) => {
    expect(routeFor(path)).toBe(route);
  });

  it("renders the playground's login link for anonymous users", () => {
    render(<App config={DEFAULT_CONFIG} pathname="/app/playground" />);
    expect(screen.getByTestId("login-link")).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Playground" })).toHaveAttribute("aria-current", "page");
  });
});
