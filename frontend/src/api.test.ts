import { describe, expect, it } from "vitest";
import { ApiError, parseError } from "./api";
import { fakeApi } from "./test/fakeApi";

describe("parseError", () => {
  it("reads the API's error shape", () => {
    const error = parseError(400, {
      error: "invalid_context",
      detail: "bad",
      details: [{ path: "cart.total", message: "required" }],
    });
    expect(error).toBeInstanceOf(ApiError);
    expect([error.status, error.error, error.detail, error.details]).toEqual([
      400,
      "invalid_context",
      "bad",
      [{ path: "cart.total", message: "required" }],
    ]);
  });

  it("joins list paths and tolerates odd detail items", () => {
    const error = parseError(400, { error: "x", details: [{ path: ["a", 0, "b"], message: "m" }, "plain"] });
    expect(error.details).toEqual([
      { path: "a.0.b", message: "m" },
      { path: "", message: "plain" },
    ]);
  });

  it("handles DRF's plain detail and non-JSON bodies", () => {
    expect(parseError(403, { detail: "Authentication credentials were not provided." })).toMatchObject({
      error: "http_403",
      detail: "Authentication credentials were not provided.",
    });
    expect(parseError(502, "<html>Bad gateway</html>")).toMatchObject({ error: "http_502", detail: "<html>Bad gateway</html>" });
    expect(parseError(500, null, "Internal Server Error")).toMatchObject({ error: "http_500", detail: "Internal Server Error" });
  });
});

describe("createApi", () => {
  it("sends the publishable key and no cookies in key mode", async () => {
    const { api, calls } = fakeApi(() => ({ status: 200, body: { effects: [] } }), "key");
    await api.execute("checkout", { a: 1 });
    expect(calls[0]).toMatchObject({
      url: "/api/rules/engine/execute/",
      method: "POST",
      credentials: "omit",
      body: { entry_point: "checkout", context: { a: 1 } },
    });
    expect(calls[0]!.headers).toMatchObject({ Authorization: "Api-Key vk_pk_test", "Content-Type": "application/json" });
    expect(calls[0]!.headers["X-CSRFToken"]).toBeUndefined();
  });

  it("sends the session cookie and CSRF token on unsafe methods in session mode", async () => {
    const { api, calls } = fakeApi(() => ({ status: 200, body: {} }), "session");
    await api.get("/api/entry-points/");
    await api.request("PATCH", "/api/rules/x/", { condition: true });
    expect(calls[0]!.credentials).toBe("same-origin");
    expect(calls[0]!.headers["X-CSRFToken"]).toBeUndefined();
    expect(calls[1]!.headers["X-CSRFToken"]).toBe("csrf-test");
    expect(calls[1]!.headers.Authorization).toBeUndefined();
  });

  it("throws ApiError with the parsed body on an error status", async () => {
    const { api } = fakeApi(() => ({ status: 429, body: { error: "throttled", detail: "slow down" } }));
    await expect(api.execute("checkout", {})).rejects.toMatchObject({ status: 429, error: "throttled", detail: "slow down" });
  });
});
