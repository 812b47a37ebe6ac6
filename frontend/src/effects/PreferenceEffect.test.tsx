import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { fakeApi } from "../test/fakeApi";
import { PreferenceEffect } from "./PreferenceEffect";
import type { UserPreferenceEffect } from "./types";

function pref(overrides: Partial<UserPreferenceEffect> = {}): UserPreferenceEffect {
  return {
    type: "user_preference",
    rule_id: "r4",
    action_index: 0,
    blocking: false,
    preference_key: "newsletter",
    options: [
      { value: "weekly", label: "Yes, weekly" },
      { value: "never", label: "No thanks" },
    ],
    default: "never",
    value: "never",
    answered: false,
    message: {
      format: "text",
      content_type: "text/plain",
      content: "Would you like our newsletter at <b>ada@example.com</b>?",
    },
    ...overrides,
  };
}

describe("PreferenceEffect", () => {
  it("shows one radio per option with the current value checked, question as text", () => {
    const { api } = fakeApi(() => ({ status: 200, body: {} }));
    render(<PreferenceEffect effect={pref()} executionId="e1" api={api} />);
    expect(screen.getByTestId("preference-option-weekly")).not.toBeChecked();
    expect(screen.getByTestId("preference-option-never")).toBeChecked();
    const box = screen.getByTestId("effect-preference");
    expect(box.querySelector("b")).toBeNull();
    expect(box).toHaveTextContent("Would you like our newsletter at <b>ada@example.com</b>?");
    expect(screen.queryByTestId("preference-saved")).toBeNull();
  });

  it("posts the answer and shows preference-saved only after the server confirms", async () => {
    // given a server that answers when released
    let release: () => void = () => undefined;
    const { api, calls } = fakeApi(
      () =>
        new Promise((resolve) => {
          release = () => resolve({ status: 200, body: { preference_key: "newsletter", value: "weekly" } });
        }),
    );
    render(<PreferenceEffect effect={pref()} executionId="exec-9" api={api} />);
    // when
    fireEvent.click(screen.getByTestId("preference-option-weekly"));
    // then nothing is claimed saved while the request is open
    await waitFor(() => expect(calls).toHaveLength(1));
    expect(screen.queryByTestId("preference-saved")).toBeNull();
    expect(calls[0]!.url).toBe("/api/rules/engine/preferences/");
    expect(calls[0]!.headers.Authorization).toBe("Api-Key vk_pk_test");
    expect(calls[0]!.body).toEqual({
      execution_id: "exec-9",
      preference_key: "newsletter",
      value: "weekly",
    });
    // when the server confirms
    release();
    // then
    expect(await screen.findByTestId("preference-saved")).toHaveTextContent("Saved: Yes, weekly");
    expect(screen.getByTestId("preference-option-weekly")).toBeChecked();
  });

  it("keeps typed option values (numbers, booleans) when posting", async () => {
    const { api, calls } = fakeApi((call) => ({
      status: 200,
      body: { preference_key: "size", value: (call.body as { value: unknown }).value },
    }));
    render(
      <PreferenceEffect
        effect={pref({
          preference_key: "size",
          options: [
            { value: 1, label: "One" },
            { value: true, label: "Yes" },
          ],
          value: null,
        })}
        executionId="e1"
        api={api}
      />,
    );
    fireEvent.click(screen.getByTestId("preference-option-1"));
    expect(await screen.findByTestId("preference-saved")).toHaveTextContent("Saved: One");
    expect(calls[0]!.body).toEqual({ execution_id: "e1", preference_key: "size", value: 1 });
  });

  it("shows the error and no saved note when the server refuses", async () => {
    const { api } = fakeApi(() => ({ status: 403, body: { error: "forbidden", detail: "wrong key" } }));
    render(<PreferenceEffect effect={pref()} executionId="e1" api={api} />);
    fireEvent.click(screen.getByTestId("preference-option-weekly"));
    expect(await screen.findByRole("alert")).toHaveTextContent("forbidden (HTTP 403): wrong key");
    expect(screen.queryByTestId("preference-saved")).toBeNull();
  });

  it("is disabled in read-only mode", () => {
    render(<PreferenceEffect effect={pref()} executionId={null} readOnly />);
    expect(screen.getByTestId("preference-option-weekly")).toBeDisabled();
  });
});
