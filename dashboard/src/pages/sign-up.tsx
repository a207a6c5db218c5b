import { type FormEvent, useState } from 'react';
import { api, ok, type Schemas } from '../api.ts';
import { useAction } from '../data.ts';
import { Link } from '../router.tsx';
import { Notice, ProblemAlert } from '../ui/feedback.tsx';

export default function SignUp() {
  const action = useAction();
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [accepted, setAccepted] = useState<Schemas['SignupAccepted']>();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    await action.run(async () => {
      setAccepted(await ok(api.POST('/v1/signup', { body: { name, email, password } })));
    });
  };

  if (accepted) {
    return (
      <section className="narrow card" aria-labelledby="sign-up-title">
        <h1 id="sign-up-title">Check your mail</h1>
        <Notice>
          We sent a link to <strong>{accepted.email}</strong>. Follow it to confirm your address; it works for
          24 hours.
        </Notice>
        <p className="hint">{accepted.detail}</p>
        <p>
          Confirmed? <Link to="/sign-in">Sign in</Link> to order a server.
        </p>
      </section>
    );
  }

  return (
    <section className="narrow card" aria-labelledby="sign-up-title">
      <h1 id="sign-up-title">Create an account</h1>
      <form onSubmit={submit} className="stack">
        <label htmlFor="name">Your name</label>
        <input
          id="name"
          autoComplete="name"
          required
          maxLength={120}
          value={name}
          onChange={(event) => setName(event.target.value)}
        />
        <label htmlFor="email">E-mail</label>
        <input
          id="email"
          type="email"
          autoComplete="email"
          required
          maxLength={254}
          value={email}
          onChange={(event) => setEmail(event.target.value)}
        />
        <label htmlFor="password">Password</label>
        <input
          id="password"
          type="password"
          autoComplete="new-password"
          required
          minLength={12}
          maxLength={256}
          aria-describedby="password-hint"
          value={password}
          onChange={(event) => setPassword(event.target.value)}
        />
        <p id="password-hint" className="hint">
          At least 12 characters; a few words in a row are easy to remember.
        </p>
        <ProblemAlert problem={action.error} />
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? 'Creating account…' : 'Create account'}
        </button>
      </form>
      <p>
        Have an account? <Link to="/sign-in">Sign in</Link>.
      </p>
    </section>
  );
}
