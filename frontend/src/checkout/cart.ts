/** The demo checkout's cart and the context it sends to the `checkout` entry point. */

export interface CartItem {
  sku: string;
  name: string;
  category: string;
  price: number;
  quantity: number;
}

export interface Product {
  sku: string;
  name: string;
  category: string;
  price: number;
}

// The two products of the checkout schema's example (rules_engine/demo/checkout.json).
export const WINE: Product = { sku: "WINE-1", name: "Bottle of wine", category: "alcohol", price: 20.5 };
export const BOOK: Product = { sku: "BOOK-7", name: "Book", category: "books", price: 100 };

export const COUNTRIES: { code: string; name: string }[] = [
  { code: "DE", name: "Germany" },
  { code: "FR", name: "France" },
  { code: "GB", name: "United Kingdom" },
  { code: "IT", name: "Italy" },
  { code: "NL", name: "Netherlands" },
  { code: "US", name: "United States" },
];

// The schema example's user. Its id must stay the same across requests: acknowledgements
// and preferences are stored per subject (`user.id`) and apply to the next decisions.
export const DEMO_USER = { id: 42, name: "Ada", email: "ada@example.com" };

export const CURRENCY = "EUR";

/** The cart starts with one book: free shipping applies, nothing is age-restricted yet. */
export function initialCart(): CartItem[] {
  return [{ ...BOOK, quantity: 1 }];
}

/** Add one of `product`: a new line, or one more on the line that already has it. */
export function addProduct(cart: CartItem[], product: Product): CartItem[] {
  if (cart.some((item) => item.sku === product.sku)) {
    return cart.map((item) =>
      item.sku === product.sku ? { ...item, quantity: item.quantity + 1 } : item,
    );
  }
  return [...cart, { ...product, quantity: 1 }];
}

export function removeLine(cart: CartItem[], sku: string): CartItem[] {
  return cart.filter((item) => item.sku !== sku);
}

/** Sum in cents so 20.5 + 100 is 120.5, not 120.49999. */
export function cartTotal(cart: CartItem[]): number {
  const cents = cart.reduce((sum, item) => sum + Math.round(item.price * 100) * item.quantity, 0);
  return cents / 100;
}

export function checkoutContext(cart: CartItem[], country: string) {
  return {
    user: { ...DEMO_USER, country },
    cart: {
      total: cartTotal(cart),
      currency: CURRENCY,
      items: cart.map(({ sku, category, price, quantity }) => ({ sku, category, price, quantity })),
    },
  };
}

export function formatMoney(amount: number): string {
  return `${amount.toFixed(2)} ${CURRENCY}`;
}
