// The token and the scope (project id, instance id) the user signed in with, kept for the browser
// tab's session only (sessionStorage), never in a URL.

const KEY = 'fdi.console.session';

/** @returns {{token: string, project_id: string, instance_id: string} | null} */
export function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? 'null');
    return s && s.token && s.project_id && s.instance_id ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}
