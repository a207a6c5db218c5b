import { type FormEvent, useState } from 'react';
import { useAction } from '../data.ts';
import { Link, navigate, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';
import { ProblemAlert } from '../ui/feedback.tsx';

export default function SignIn() {
  const { signIn } = useSession();
  const { query } = useLocation();
  const action = useAction();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const next = query.get('next');
    if (await action.run(() => signIn(email, password))) {
      navigate(next?.startsWith('/') && next !== '/sign-in' ? next : '/', { replace: true });
    }
  };

  return (
    <section className="narrow card" aria-labelledby="sign-in-title">
      <h1 id="sign-in-title">Sign in</h1>
      <form onSubmit={submit} className="stack">
        <label htmlFor="email">E-mail</label>
        <input
          id="email"
          type="email"
          autoComplete="username"
          required
          value={email}
          onChange={(event) => setEmail(event.target.value)}
        />
        <label htmlFor="password">Password</label>
        <input
          id="password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(event) => setPassword(event.target.value)}
        />
        <ProblemAlert problem={action.error} />
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p>
        New here? <Link to="/sign-up">Create an account</Link> to order a Mastodon server.
      </p>
    </section>
  );
}
