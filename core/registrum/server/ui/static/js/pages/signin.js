// Sign-in: through the server's identity provider when it has one (a session cookie), or
// with an API token (made by `registrum tokens create` or printed by the server).

import { ApiError, loadSession, session, setToken, signinOptions } from "../api.js";
import { h } from "../dom.js";

export default async function render(root, params, query) {
  const next = query.get("next") || "#/";
  const options = await signinOptions();
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "off",
    placeholder: "rg_...", required: true, size: 48 });
  const message = h("p", { class: "error", role: "alert", hidden: true });
  const form = h(
    "form",
    { class: "signin", onsubmit: async (event) => {
      event.preventDefault();
      message.hidden = true;
      setToken(input.value.trim());
      try {
        await loadSession();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
      }
      if (session.me) {
        location.hash = next;
      } else {
        setToken(null);
        message.textContent = "That token was not accepted: it may be wrong, expired or revoked.";
        message.hidden = false;
      }
    } },
    h("h1", {}, "Sign in"),
    options.oidc ? h("p", {},
      h("a", { class: "button", id: "signin-oidc",
        href: `${options.oidc.login_url}?${new URLSearchParams({ next })}` },
        `Sign in with ${options.oidc.name}`)) : null,
    h("p", {}, options.oidc ? "Or sign in with an API token, made with " :
      "This server asks for an API token. Ask an admin for one, or make one with ",
      h("code", {}, "registrum tokens create"), "."),
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit", id: "signin" }, "Sign in"),
    message,
  );
  root.append(form);
  if (!options.oidc) input.focus();
}
