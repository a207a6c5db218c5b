import { type ReactNode, useEffect, useId, useRef, useState } from 'react';

/**
 * A modal confirmation. With `typed`, the button stays disabled until the user types that
 * text (a server's domain before deleting it). Escape and Cancel close it; focus is trapped
 * by the native <dialog>.
 */
export function ConfirmDialog({
  title,
  children,
  typed,
  confirmLabel,
  danger = false,
  onConfirm,
  onClose,
}: {
  title: string;
  children: ReactNode;
  typed?: string;
  confirmLabel: string;
  danger?: boolean;
  onConfirm: () => void;
  onClose: () => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [text, setText] = useState('');
  const titleId = useId();
  const inputId = useId();
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  const ready = typed === undefined || text === typed;
  return (
    <dialog ref={dialog} aria-labelledby={titleId} onClose={onClose} className="dialog">
      <form
        method="dialog"
        onSubmit={(event) => {
          event.preventDefault();
          if (ready) onConfirm();
        }}
      >
        <h2 id={titleId}>{title}</h2>
        {children}
        {typed !== undefined ? (
          <p>
            <label htmlFor={inputId}>
              Type <strong>{typed}</strong> to confirm
            </label>
            <input
              id={inputId}
              value={text}
              onChange={(event) => setText(event.target.value)}
              autoComplete="off"
              spellCheck={false}
            />
          </p>
        ) : null}
        <div className="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className={danger ? 'danger' : 'primary'} disabled={!ready}>
            {confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
