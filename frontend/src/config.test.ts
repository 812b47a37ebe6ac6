import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_CONFIG, parseConfig, readConfig } from "./config";

afterEach(() => {
  document.getElementById("verdict-config")?.remove();
});

describe("config", () => {
  it("reads the injected #verdict-config JSON", () => {
    const script = document.createElement("script");
    script.id = "verdict-config";
    script.type = "application/json";
    script.textContent = JSON.stringify({
      apiBase: "",
      publishableKey: "vk_pk_abc",
      csrfToken: "tok",
      user: { username: "ada", isStaff: true },
      loginUrl: "/admin/login/?next=/app/playground",
    });
    document.head.appendChild(script);
    expect(readConfig()).toEqual({
      apiBase: "",
      publishableKey: "vk_pk_abc",
      csrfToken: "tok",
      user: { username: "ada", isStaff: true },
      loginUrl: "/admin/login/?next=/app/playground",
    });
  });

  it("falls back to defaults without the element, with bad JSON or wrong types", () => {
    expect(readConfig()).toEqual(DEFAULT_CONFIG);
    expect(parseConfig("{not json")).toEqual(DEFAULT_CONFIG);
    expect(parseConfig("[1]")).toEqual(DEFAULT_CONFIG);
    expect(parseConfig('{"publishableKey": 5, "user": {"name": "x"}, "apiBase": "https://h/"}')).toEqual({
      ...DEFAULT_CONFIG,
      apiBase: "https://h",
    });
  });
});
