import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { fakeApi } from "../test/fakeApi";
import { TEST_CONFIG } from "../test/fakeApi";
import { addProduct, BOOK, cartTotal, checkoutContext, initialCart, WINE } from "./cart";
import { CheckoutPage } from "./CheckoutPage";
import { checkoutServer } from "./fakeCheckoutServer";

function setup() {
  const server = checkoutServer();
  const { api, calls } = fakeApi(server.handle);
  render(<CheckoutPage config={TEST_CONFIG} api={api} debounceMs={0} />);
  const executes = () => calls.filter((call) => call.url === "/api/rules/engine/execute/");
  return { server, calls, executes };
}

async function settled(executes: () => unknown[], count: number) {
  await waitFor(() => expect(executes()).toHaveLength(count));
  await waitFor(() => expect(screen.queryByText("Checking your order…", { selector: "[data-testid=pay-blocked-reason]" })).toBeNull());
}

describe("cart", () => {
  it("adds a product as a new line, then one more of it", () => {
    const once = addProduct(initialCart(), WINE);
    const twice = addProduct(once, WINE);
    expect(twice.map((item) => [item.sku, item.quantity])).toEqual([
      ["BOOK-7", 1],
      ["WINE-1", 2],
    ]);
    expect(cartTotal(twice)).toBe(141);
  });

  it("builds the checkout context of the schema with the example user", () => {
    expect(checkoutContext(addProduct(initialCart(), WINE), "FR")).toEqual({
      user: { id: 42, name: "Ada", email: "ada@example.com", country: "FR" },
      cart: {
        total: 120.5,
        currency: "EUR",
        items: [
          { sku: "BOOK-7", category: "books", price: 100, quantity: 1 },
          { sku: "WINE-1", category: "alcohol", price: 20.5, quantity: 1 },
        ],
      },
    });
    expect(BOOK.category).toBe("books");
  });
});

describe("CheckoutPage", () => {
  it("shows the cart and the first decision's banner, and lets the customer pay", async () => {
    const { executes } = setup();
    expect(screen.getAllByTestId("cart-item")).toHaveLength(1);
    expect(screen.getByTestId("cart-total")).toHaveTextContent("100.00 EUR");
    // then the banner arrives and Pay is enabled
    const banner = await screen.findByTestId("effect-message");
    expect(banner).toHaveAttribute("data-level", "success");
    expect(banner.querySelector("strong")).toHaveTextContent("Ada");
    await waitFor(() => expect(screen.getByTestId("pay-button")).toBeEnabled());
    expect(screen.queryByTestId("pay-blocked-reason")).toBeNull();
    // when paying
    fireEvent.click(screen.getByTestId("pay-button"));
    // then the server is asked once more and the order is placed
    expect(await screen.findByTestId("order-placed")).toHaveTextContent("Order placed: 100.00 EUR");
    expect(executes()).toHaveLength(2);
  });

  it("blocks Pay while the age acknowledgement is open and unblocks on the server's word", async () => {
    const { server, calls, executes } = setup();
    await settled(executes, 1);
    // when a bottle of wine is added
    fireEvent.click(screen.getByTestId("add-item-wine"));
    // then the decision blocks Pay, with the reason
    await screen.findByTestId("effect-acknowledge");
    await settled(executes, 2);
    expect(screen.getByTestId("pay-button")).toBeDisabled();
    expect(screen.getByTestId("pay-blocked-reason")).toHaveTextContent("Please complete first: Age confirmation.");
    expect(screen.getByTestId("cart-total")).toHaveTextContent("120.50 EUR");
    // when the terms are accepted
    fireEvent.click(screen.getByTestId("acknowledge-accept"));
    // then the acknowledgement is posted for the current execution, the page asks again, and
    // the server's non-blocking answer enables Pay
    await waitFor(() => expect(screen.getByTestId("pay-button")).toBeEnabled());
    const ackCall = calls.find((call) => call.url === "/api/rules/engine/acknowledgements/");
    expect(ackCall?.body).toEqual({ execution_id: "exec-2", ack_key: "age-check-v1" });
    expect(executes()).toHaveLength(3);
    expect(screen.getByTestId("effect-acknowledge")).toHaveAttribute("data-acknowledged", "true");
    expect(screen.queryByTestId("pay-blocked-reason")).toBeNull();
    // and the same user id was sent every time, so the acknowledgement applies
    expect(new Set(server.contexts.map((context) => context.user.id))).toEqual(new Set([42]));
    // when paying
    fireEvent.click(screen.getByTestId("pay-button"));
    expect(await screen.findByTestId("order-placed")).toBeInTheDocument();
  });

  it("keeps Pay blocked when the server still says blocking after the acknowledgement", async () => {
    // given a server that records nothing
    const server = checkoutServer();
    const { api } = fakeApi((call) =>
      call.url === "/api/rules/engine/acknowledgements/"
        ? { status: 201, body: { ack_key: "age-check-v1", acknowledged: true } }
        : server.handle(call),
    );
    render(<CheckoutPage config={TEST_CONFIG} api={api} debounceMs={0} />);
    fireEvent.click(screen.getByTestId("add-item-wine"));
    await screen.findByTestId("effect-acknowledge");
    fireEvent.click(screen.getByTestId("acknowledge-accept"));
    await screen.findByText("Not confirmed by the server yet.");
    expect(screen.getByTestId("pay-button")).toBeDisabled();
    expect(screen.getByTestId("pay-blocked-reason")).toHaveTextContent("Age confirmation");
  });

  it("re-executes on a country change with the new country", async () => {
    const { server, executes } = setup();
    await settled(executes, 1);
    fireEvent.change(screen.getByTestId("country-select"), { target: { value: "US" } });
    await settled(executes, 2);
    expect(server.contexts.at(-1)?.user.country).toBe("US");
    const options = within(screen.getByTestId("country-select"))
      .getAllByRole("option")
      .map((option) => (option as HTMLOptionElement).value);
    expect(options).toEqual(expect.arrayContaining(["DE", "US", "FR"]));
  });

  it("opens the large-order modal above 1000 and closes it on a button", async () => {
    const { executes } = setup();
    await settled(executes, 1);
    for (let i = 0; i < 10; i += 1) fireEvent.click(screen.getByTestId("add-item-book"));
    const dialog = await screen.findByRole("dialog", { name: "Large order" });
    expect(screen.getByTestId("cart-total")).toHaveTextContent("1100.00 EUR");
    fireEvent.click(within(dialog).getByTestId("modal-button-cancel"));
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  it("saves the newsletter preference shown from the second checkout on", async () => {
    const { executes, calls } = setup();
    await settled(executes, 1);
    fireEvent.click(screen.getByTestId("add-item-book"));
    fireEvent.click(await screen.findByTestId("preference-option-weekly"));
    expect(await screen.findByTestId("preference-saved")).toHaveTextContent("Saved: Yes, weekly");
    const posted = calls.find((call) => call.url === "/api/rules/engine/preferences/");
    expect(posted?.body).toEqual({ execution_id: "exec-2", preference_key: "newsletter", value: "weekly" });
  });

  it("blocks Pay when the decision fails (the server is the authority)", async () => {
    const { api } = fakeApi(() => ({ status: 503, body: { error: "unavailable" } }));
    render(<CheckoutPage config={TEST_CONFIG} api={api} debounceMs={0} />);
    expect(await screen.findByRole("alert")).toHaveTextContent("unavailable");
    expect(screen.getByTestId("pay-button")).toBeDisabled();
    expect(screen.getByTestId("pay-blocked-reason")).toHaveTextContent("could not be checked");
  });
});
