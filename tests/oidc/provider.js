// The test OpenID provider: panva's oidc-provider (OpenID Certified), as the OIDC tests of
// slugbase sign in through it. Started by tests/oidc/harness.rs on a loopback port:
//   PORT=<port> REDIRECT_URI=<slugbase callback> node provider.js
// It prints "ready <issuer>" once it listens.
//
// Accounts: any login name works (devInteractions takes no password). The login name is the
// subject, and the account's email is <login>@example.com, verified unless the name starts
// with "unverified" (e.g. "ann" is verified, "unverified-bob" is not).
// Client: "slugbase" with secret CLIENT_SECRET (client_secret_basic), the authorization code
// flow with PKCE, ID tokens signed RS256.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const host = '127.0.0.1';
const issuer = `http://${host}:${port}`;
const redirectUri = process.env.REDIRECT_URI;
export const CLIENT_SECRET = 'slugbase-test-client-secret-0123456789';

function claimsOf(login) {
  return {
    sub: login,
    email: `${login}@example.com`,
    email_verified: !login.startsWith('unverified'),
    name: `Test ${login}`,
  };
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'slugbase',
      client_secret: CLIENT_SECRET,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  scopes: ['openid', 'email', 'profile'],
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ['slugbase-test-cookie-key'] },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return claimsOf(id); } };
  },
});

provider.listen(port, host, () => {
  console.log(`ready ${issuer}`);
});
