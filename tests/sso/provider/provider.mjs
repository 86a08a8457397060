// A real OpenID Connect provider (npm `oidc-provider`) for Registrum's SSO tests.
//
//   node provider.mjs PORT CONFIG.json
//
// Listens on 127.0.0.1:PORT (0: any free port) over plain HTTP and prints one line,
// `READY http://127.0.0.1:PORT`, on stdout once it accepts connections; that URL is the
// issuer. Everything else (oidc-provider's notices and warnings, errors) goes to stderr.
// tests/sso/oidc_provider.py starts it, writes the configuration and drives its pages.
//
// CONFIG.json:
//   keys          a JWKS of private RS256 keys to sign with (a restart with other keys on
//                 the same port is a key rotation)
//   clients       client metadata objects, as oidc-provider takes them
//   users         login name -> claims; the login name is the account id and `sub`;
//                 any other login is unknown, and its sign-in fails
//   id_token_ttl  optional client_id -> ID token lifetime in seconds (default 3600)
//
// Sign-in and consent are oidc-provider's development interactions (any password is
// accepted for a known login). State (sessions, codes, tokens) lives in memory, so it is
// lost on a restart.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

// oidc-provider prints its development notices with console.info (stdout); stdout carries
// only the READY line.
console.log = console.error;
console.info = console.error;

const [portArgument, configPath] = process.argv.slice(2);
if (portArgument === undefined || configPath === undefined) {
  console.error('usage: node provider.mjs PORT CONFIG.json');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const users = config.users ?? {};
const idTokenTtl = config.id_token_ttl ?? {};

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

function isLoopbackHttp(uri) {
  const parsed = URL.parse(uri);
  return parsed !== null && parsed.protocol === 'http:' && LOOPBACK_HOSTS.has(parsed.hostname);
}

// Loopback redirect URIs on any port (RFC 8252 §7.3): the server under test listens on a
// port only known at run time, so a client registers `http://127.0.0.1/auth/oidc/callback`
// and uses `http://127.0.0.1:PORT/auth/oidc/callback`. oidc-provider allows exactly that,
// with any port, for clients of `application_type: "native"` (Client#redirectUriAllowed
// compares loopback URIs with their ports stripped), whatever the client's authentication
// method: a confidential client with client_secret_basic or client_secret_post works. So a
// client that names no application_type, and whose redirect URIs are all http loopback
// ones, is registered as native here. A client that says "web" keeps oidc-provider's exact
// matching.
const clients = (config.clients ?? []).map((client) => {
  const redirectUris = client.redirect_uris ?? [];
  if (
    client.application_type === undefined
    && redirectUris.length > 0
    && redirectUris.every(isLoopbackHttp)
  ) {
    return { ...client, application_type: 'native' };
  }
  return client;
});

function htmlEscape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const configuration = {
  clients,
  jwks: config.keys,
  // Signs the session and interaction cookies; a fresh secret per process (the in-memory
  // sessions do not outlive the process anyway). Cookies are not `Secure` on plain HTTP:
  // oidc-provider sets that flag only when the request itself is secure.
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  async findAccount(ctx, id) {
    if (!Object.hasOwn(users, id)) {
      return undefined; // an unknown login: the sign-in does not complete
    }
    return {
      accountId: id,
      async claims() {
        return { ...users[id], sub: id };
      },
    };
  },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // The ID token carries the claims of the granted scopes itself, not only `sub`.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  // oidc-provider's default asks PKCE only of public clients; every authorization code
  // request here must carry an S256 code_challenge (the only method v9 supports).
  pkce: { required: () => true },
  ttl: {
    IdToken(ctx, token, client) {
      return idTokenTtl[client.clientId] ?? 3600;
    },
    AccessToken: 3600,
    AuthorizationCode: 60,
    ClientCredentials: 600,
    DeviceCode: 600,
    Grant: 3600,
    Interaction: 3600,
    RefreshToken: 86400,
    Session: 3600,
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><title>oidc-provider error</title></head><body>${
      Object.entries(out)
        .map(([key, value]) => `<pre>${htmlEscape(key)}: ${htmlEscape(value)}</pre>`)
        .join('')
    }</body></html>`;
  },
};

// The development sign-in form accepts any login, and oidc-provider then fails the whole
// authorization with a server_error (its consent check finds no account) when findAccount
// does not know it. A real provider would say "unknown user" on its sign-in page instead:
// this middleware, ahead of oidc-provider's routes, answers a sign-in of an unknown login
// with the sign-in form again and a message, so the interaction stays at the login prompt.
// A known login goes on to oidc-provider, with the body parsed here (oidc-provider reads an
// upstream parser's ctx.request.body).
const INTERACTION_SUBMIT = /^\/interaction\/[^/]+$/;

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 56 * 1024) {
      throw new Error('request entity too large');
    }
    chunks.push(chunk);
  }
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

async function refuseUnknownLogins(ctx, next) {
  if (
    ctx.method !== 'POST'
    || !INTERACTION_SUBMIT.test(ctx.path)
    || !ctx.is('application/x-www-form-urlencoded')
  ) {
    return next();
  }
  const form = await readForm(ctx.req);
  ctx.request.body = form;
  if (form.prompt !== 'login' || Object.hasOwn(users, form.login ?? '')) {
    return next();
  }
  ctx.status = 200;
  ctx.type = 'html';
  ctx.set('cache-control', 'no-store');
  ctx.body = `<!DOCTYPE html><html><head><title>Sign-in</title></head><body>
<p class="red">Unknown user ${htmlEscape(form.login ?? '')}: sign-in refused</p>
<form autocomplete="off" action="${htmlEscape(ctx.path)}" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login">
  <input required type="password" name="password" placeholder="and password">
  <button type="submit">Sign-in</button>
</form></body></html>`;
  return undefined;
}

// The development pages import a web font from fonts.googleapis.com and ask for a favicon:
// a test browser must reach nothing but loopback, so the import goes and the icon is empty.
async function keepPagesLocal(ctx, next) {
  if (ctx.path === '/favicon.ico') {
    ctx.status = 204;
    return undefined;
  }
  await next();
  if (typeof ctx.body === 'string' && (ctx.type || '').startsWith('text/html')) {
    ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);/g, '');
  }
  return undefined;
}

const server = createServer();
server.on('error', (error) => {
  console.error(error);
  process.exit(1);
});
server.listen(Number(portArgument), '127.0.0.1', async () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (ctx, error) => console.error('server_error', error));
  provider.use(keepPagesLocal);
  provider.use(refuseUnknownLogins);
  server.on('request', provider.callback());
  // oidc-provider checks a static client's metadata only when the client is first used
  // (and then answers invalid_client); loading each one now fails the start instead.
  try {
    for (const client of clients) {
      await provider.Client.find(client.client_id);
    }
  } catch (error) {
    console.error('invalid client metadata:', error);
    process.exit(1);
  }
  process.stdout.write(`READY ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
