// A real OAuth 2.0 / OpenID Connect authorization server for Portico's tests: oidc-provider
// (a certified OpenID Provider) on 127.0.0.1, with a few test hooks around it.
//
// Environment:
//   PORT            required; 0 lets the system pick a free port. Issuer: http://127.0.0.1:PORT
//   AT_TTL          access-token lifetime in seconds (default 5), client-credentials tokens too
//   RT_TTL          refresh-token lifetime in seconds (default 3600)
//   REDIRECT_URIS   comma-separated redirect URIs every default client may use; without any,
//                   no client can sign in (client credentials and refresh still work)
//   CLIENTS_JSON    a JSON array of more clients; an entry with a default client's id replaces it
//   AUTO_APPROVE    1: sign in as login_hint (or alice) and grant every requested scope without
//                   a page; login_hint=deny answers access_denied. 0 (default): the real login and
//                   consent forms of oidc-provider.
//   EXIT_WITH_STDIN 1: exit when standard input closes (the Rust helper holds it open), so that
//                   a killed test run leaves no server behind
//
// Standard output, one line each (values percent-encoded):
//   READY http://127.0.0.1:PORT                     once listening
//   TOKEN grant=<grant_type> client=<id> auth=<method> status=<status>   each token-endpoint call
//   INTROSPECT client=<id> auth=<method> status=<status>                 each introspection call
//   REVOKE client=<id> auth=<method> status=<status>                     each revocation call
//   RESOURCE client=<id> status=<status>                                 each /__test/resource call
// where <method> is the one the request used: client_secret_basic, client_secret_post, none,
// client_assertion or several.
//
// Test hooks (not part of oidc-provider; loopback tests only):
//   POST /__test/fail?count=N&status=503&delay_ms=0&error=...&endpoint=token
//        the next N calls of the endpoint (token, introspection or revocation) wait delay_ms,
//        then answer `status` with {"error": ...}; status=0 lets them through after the delay.
//   POST /__test/revoke-grants   forgets every grant and its tokens: a refresh gets invalid_grant
//   GET  /__test/stats           {"token": {<grant_type>: calls}, "introspect": n, "revoke": n,
//                                 "resource": n, "events": lines printed after READY}
//   ANY  /__test/resource[/...]  a resource server: 200 {"sub", "client_id", "scope"} for a valid
//                                bearer access token of any grant (userinfo at /me needs `openid`),
//                                401 with WWW-Authenticate otherwise

import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const env = process.env;

function seconds(name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) fail(`${name} must be a positive whole number of seconds, not ${raw}`);
  return value;
}

function fail(message) {
  console.error(`idp: ${message}`);
  process.exit(2);
}

if (env.PORT === undefined || !/^\d+$/.test(env.PORT)) fail('PORT is required (0 picks a free port)');
const AT_TTL = seconds('AT_TTL', 5);
const RT_TTL = seconds('RT_TTL', 3600);
const AUTO_APPROVE = env.AUTO_APPROVE === '1';
const REDIRECT_URIS = (env.REDIRECT_URIS ?? '').split(',').map((uri) => uri.trim()).filter(Boolean);

const SCOPES = ['openid', 'offline_access', 'profile', 'email', 'api:read', 'api:write'];

// Without a redirect URI no client can take part in a sign-in (oidc-provider refuses a client
// with response types and no redirect URIs): the clients keep their other grants.
const RESPONSE_TYPES = REDIRECT_URIS.length ? ['code'] : [];

function defaultClients() {
  const common = {
    redirect_uris: REDIRECT_URIS,
    response_types: RESPONSE_TYPES,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    scope: SCOPES.join(' '),
  };
  return [
    { ...common, client_id: 'basic-client', client_secret: 'basic-secret', token_endpoint_auth_method: 'client_secret_basic' },
    { ...common, client_id: 'post-client', client_secret: 'post-secret', token_endpoint_auth_method: 'client_secret_post' },
    { ...common, client_id: 'odd-client', client_secret: 'p+ss/w%rd:x y', token_endpoint_auth_method: 'client_secret_basic' },
    { ...common, client_id: 'public-client', token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] },
    {
      ...common,
      client_id: 'cc-client',
      client_secret: 'cc-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ];
}

function clients() {
  const byId = new Map(defaultClients().map((client) => [client.client_id, client]));
  if (env.CLIENTS_JSON) {
    let extra;
    try {
      extra = JSON.parse(env.CLIENTS_JSON);
    } catch (error) {
      fail(`CLIENTS_JSON is not JSON: ${error.message}`);
    }
    if (!Array.isArray(extra)) fail('CLIENTS_JSON must be a JSON array of client metadata');
    for (const client of extra) {
      if (typeof client?.client_id !== 'string') fail('every client of CLIENTS_JSON needs a client_id');
      byId.set(client.client_id, {
        redirect_uris: REDIRECT_URIS,
        response_types: RESPONSE_TYPES,
        grant_types: ['authorization_code', 'refresh_token'],
        scope: SCOPES.join(' '),
        ...client,
      });
    }
  }
  return [...byId.values()];
}

// Storage in one Map without eviction (oidc-provider's own memory adapter is an LRU of 1,000
// entries, which a long test could overflow), so that the hooks can also forget grants.
const store = new Map(); // key `${model}:${id}` -> { payload, expiresAt (ms) }
const grantMembers = new Map(); // grantId -> Set of keys of the tokens issued under it
const sessionByUid = new Map();
const byUserCode = new Map();

function live(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.payload;
}

class TestAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined;
    store.set(key, { payload, expiresAt });
    if (payload.grantId && this.model !== 'Grant') {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
    if (this.model === 'Session' && payload.uid) sessionByUid.set(payload.uid, id);
    if (payload.userCode) byUserCode.set(payload.userCode, id);
  }

  async find(id) {
    return live(this.key(id));
  }

  async findByUid(uid) {
    const id = sessionByUid.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = byUserCode.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = live(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

function forgetGrants() {
  let forgotten = 0;
  for (const key of [...store.keys()]) {
    if (!key.startsWith('Grant:')) continue;
    const grantId = key.slice('Grant:'.length);
    store.delete(key);
    for (const member of grantMembers.get(grantId) ?? []) store.delete(member);
    grantMembers.delete(grantId);
    forgotten += 1;
  }
  return forgotten;
}

// Counters and the log.
const stats = { token: {}, introspect: 0, revoke: 0, resource: 0, events: 0 };
let ready = false;

function event(line) {
  if (ready) stats.events += 1;
  console.log(line);
}

const field = (value) => (value === undefined || value === '' ? '-' : encodeURIComponent(String(value)));

// The next failures to inject, set by POST /__test/fail.
let injection = { endpoint: 'token', count: 0, status: 503, delayMs: 0, error: undefined };

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** The raw form body of a request, read once and handed to oidc-provider as `req.body`. */
async function readForm(ctx) {
  if (!ctx.is('application/x-www-form-urlencoded')) return new URLSearchParams();
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > 56 * 1024) ctx.throw(413, 'request entity too large');
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks);
  // oidc-provider reads an already-read body from `req.body`, as behind a body-parsing framework.
  ctx.req.body = body;
  return new URLSearchParams(body.toString('utf8'));
}

/** Decodes one half of a Basic credential as RFC 6749 §2.3.1 encodes it, or undefined. */
function formDecode(text) {
  try {
    return decodeURIComponent(text.replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

/** The client authentication a request used, and the client id it names. */
function clientAuthOf(ctx, form) {
  const used = [];
  let clientId = form.get('client_id') ?? undefined;
  const authorization = ctx.get('authorization');
  if (/^basic /i.test(authorization)) {
    used.push('client_secret_basic');
    const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon !== -1) clientId = formDecode(decoded.slice(0, colon)) ?? clientId;
  }
  if (form.has('client_secret')) used.push('client_secret_post');
  if (form.has('client_assertion')) used.push('client_assertion');
  if (used.length === 0) used.push('none');
  return { method: used.length === 1 ? used[0] : 'several', clientId };
}

function oauthError(ctx, status, error, description) {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error, error_description: description };
}

const ENDPOINTS = {
  '/token': { name: 'token', tag: 'TOKEN' },
  '/token/introspection': { name: 'introspection', tag: 'INTROSPECT' },
  '/token/revocation': { name: 'revocation', tag: 'REVOKE' },
};

function strictClientAuth(registered) {
  return async function clientEndpoints(ctx, next) {
    const endpoint = ctx.method === 'POST' ? ENDPOINTS[ctx.path] : undefined;
    if (!endpoint) return next();

    const form = await readForm(ctx);
    const { method, clientId } = clientAuthOf(ctx, form);
    const grant = form.get('grant_type') ?? undefined;
    try {
      if (injection.count > 0 && injection.endpoint === endpoint.name) {
        const { status, delayMs, error } = injection;
        injection.count -= 1;
        if (delayMs > 0) await sleep(delayMs);
        if (status !== 0) {
          const code = error ?? (status === 500 ? 'server_error' : 'temporarily_unavailable');
          oauthError(ctx, status, code, 'failure injected by /__test/fail');
          return;
        }
      }
      // oidc-provider takes client_secret_basic and client_secret_post from any client that
      // has a secret; real providers often accept only the registered one.
      const expected = registered.get(clientId);
      const comparable = ['client_secret_basic', 'client_secret_post', 'none'];
      if (expected && comparable.includes(method) && method !== expected) {
        oauthError(ctx, 401, 'invalid_client', `client ${clientId} must authenticate with ${expected}, not ${method}`);
        if (method === 'client_secret_basic') ctx.set('WWW-Authenticate', `Basic realm="${ctx.origin}", error="invalid_client"`);
        return;
      }
      await next();
    } finally {
      if (endpoint.name === 'token') {
        const counted = grant ?? '-';
        stats.token[counted] = (stats.token[counted] ?? 0) + 1;
        event(`TOKEN grant=${field(grant)} client=${field(clientId)} auth=${method} status=${ctx.status}`);
      } else {
        stats[endpoint.name === 'introspection' ? 'introspect' : 'revoke'] += 1;
        event(`${endpoint.tag} client=${field(clientId)} auth=${method} status=${ctx.status}`);
      }
    }
  };
}

function testHooks(provider) {
  return async function hooks(ctx, next) {
    if (ctx.path === '/__test/fail' && ctx.method === 'POST') {
      const query = ctx.query;
      const endpoint = query.endpoint ?? 'token';
      if (!['token', 'introspection', 'revocation'].includes(endpoint)) ctx.throw(400, 'endpoint: token, introspection or revocation');
      const status = Number(query.status ?? (query.delay_ms !== undefined ? 0 : 503));
      const count = Number(query.count ?? 1);
      const delayMs = Number(query.delay_ms ?? 0);
      if (![status, count, delayMs].every(Number.isInteger)) ctx.throw(400, 'count, status and delay_ms are whole numbers');
      injection = { endpoint, count, status, delayMs, error: query.error };
      ctx.body = { ...injection };
      return;
    }
    if (ctx.path === '/__test/revoke-grants' && ctx.method === 'POST') {
      ctx.body = { forgotten: forgetGrants() };
      return;
    }
    if (ctx.path === '/__test/stats' && ctx.method === 'GET') {
      ctx.body = stats;
      return;
    }
    if (ctx.path === '/__test/resource' || ctx.path.startsWith('/__test/resource/')) {
      await resource(provider, ctx);
      return;
    }
    if (AUTO_APPROVE && ctx.path.startsWith('/__auto/') && ctx.method === 'GET') {
      await autoApprove(provider, ctx);
      return;
    }
    await next();
  };
}

/** A resource server that accepts the access tokens of this provider, of any grant. */
async function resource(provider, ctx) {
  let client;
  try {
    const match = /^Bearer\s+(\S+)$/i.exec(ctx.get('authorization'));
    if (!match) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer realm="test-resource"');
      ctx.body = { error: 'invalid_request', error_description: 'no bearer token' };
      return;
    }
    const token = (await provider.AccessToken.find(match[1])) ?? (await provider.ClientCredentials.find(match[1]));
    if (!token || token.isExpired) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer realm="test-resource", error="invalid_token"');
      ctx.body = { error: 'invalid_token', error_description: 'the access token is unknown or expired' };
      return;
    }
    if (token.grantId && !(await provider.Grant.find(token.grantId))) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer realm="test-resource", error="invalid_token"');
      ctx.body = { error: 'invalid_token', error_description: 'the grant of the access token is gone' };
      return;
    }
    client = token.clientId;
    ctx.body = {
      sub: token.accountId ?? null,
      client_id: token.clientId,
      scope: token.scope ?? '',
      method: ctx.method,
      path: ctx.path,
    };
  } finally {
    stats.resource += 1;
    event(`RESOURCE client=${field(client)} status=${ctx.status}`);
  }
}

/** AUTO_APPROVE: the user signs in and consents to everything at once, without a page. */
async function autoApprove(provider, ctx) {
  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (error) {
    ctx.status = 400;
    ctx.type = 'text';
    ctx.body = `interaction: ${error.message} (is the client keeping cookies?)`;
    return;
  }
  const { params, prompt, session, grantId } = details;
  let result;
  if (params.login_hint === 'deny') {
    result = { error: 'access_denied', error_description: 'the user refused (login_hint=deny)' };
  } else {
    const accountId = session?.accountId ?? params.login_hint ?? 'alice';
    const grant = (grantId && (await provider.Grant.find(grantId)))
      || new provider.Grant({ accountId, clientId: params.client_id });
    grant.addOIDCScope(String(params.scope ?? 'openid'));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    result = { login: { accountId }, consent: { grantId: await grant.save() } };
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

function signingKeys() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'test-rs256' }] };
}

function configuration(clientList) {
  return {
    adapter: TestAdapter,
    clients: clientList,
    jwks: signingKeys(),
    scopes: SCOPES,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    responseTypes: ['code'],
    async findAccount(_ctx, accountId) {
      return {
        accountId,
        async claims() {
          return {
            sub: accountId,
            email: `${accountId}@example.test`,
            email_verified: true,
            name: accountId.charAt(0).toUpperCase() + accountId.slice(1),
            preferred_username: accountId,
          };
        },
      };
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: !AUTO_APPROVE },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
    },
    // With AUTO_APPROVE the interactions go to the hook below; without, to devInteractions'
    // forms at /interaction/<uid>.
    ...(AUTO_APPROVE ? { interactions: { url: (_ctx, interaction) => `/__auto/${interaction.uid}` } } : {}),
    // A refresh token with every code grant of a client allowed to refresh, whether or not
    // `offline_access` survived (oidc-provider drops it unless prompt=consent); rotated each use.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    // Tokens outlive the browser session: Portico keeps them long after the sign-in.
    expiresWithSession: async () => false,
    ttl: {
      AccessToken: AT_TTL,
      ClientCredentials: AT_TTL,
      RefreshToken: RT_TTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 86400,
      Grant: RT_TTL + 86400,
    },
    cookies: { keys: ['portico-test-idp-cookie-key'] },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><title>oops</title><h1>${out.error}</h1><p class="error_description">${String(out.error_description ?? '').replace(/[<>&"]/g, '')}</p>`;
    },
  };
}

const server = createServer();
server.on('error', (error) => fail(`cannot listen on 127.0.0.1:${env.PORT}: ${error.message}`));
server.listen(Number(env.PORT), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const clientList = clients();
  const registered = new Map(clientList.map((c) => [c.client_id, c.token_endpoint_auth_method ?? 'client_secret_basic']));
  const provider = new Provider(issuer, configuration(clientList));
  provider.use(testHooks(provider));
  provider.use(strictClientAuth(registered));
  provider.on('server_error', (_ctx, error) => console.error('idp server_error:', error));
  server.on('request', provider.callback());
  console.log(`READY ${issuer}`);
  ready = true;
});

// A test harness keeps our standard input open while it needs us; if it dies without
// stopping us, the pipe closes and we go too.
if (env.EXIT_WITH_STDIN === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
