// Progressive enhancement only: every action works without this file.
"use strict";

(function () {
  // Tell the server the viewer's time zone once, so dates render in it from then on.
  let zoneChanged = false;
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && !document.cookie.split("; ").includes("t0admin_tz=" + encodeURIComponent(zone))) {
      document.cookie = "t0admin_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
      zoneChanged = true;
    }
  } catch (e) { /* no Intl: UTC it is */ }

  const modal = () => document.getElementById("modal");
  const modalBody = () => document.getElementById("modal-body");

  function closeModal() {
    const dialog = modal();
    if (dialog && dialog.open) dialog.close();
  }

  // Screen readers hear results through a live region; inside the open dialog, because
  // the modal dialog makes the rest of the page inert.
  function announce(text) {
    const dialog = modal();
    const region = document.getElementById(dialog && dialog.open ? "dialog-announcer" : "announcer");
    if (!region || !text) return;
    region.textContent = "";
    // A beat later, so that the same words twice in a row are read twice.
    setTimeout(() => { region.textContent = text; }, 50);
  }
  const words = (element) => element.textContent.trim().replace(/\s+/g, " ");

  // Keyboard focus is never left on <body>: into each dialog, and back to where it came
  // from; when a redraw replaced that element, to the same link in the same row (or the
  // row itself).
  const FOCUSABLE = "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), " +
    "select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

  function firstFocusable(root) {
    const marked = root.querySelector("[aria-invalid=true], [autofocus]");
    if (marked) return marked;
    return Array.from(root.querySelectorAll(FOCUSABLE)).find((el) => el.getClientRects().length > 0);
  }

  function focusOn(element) {
    if (!element) return;
    if (!element.matches(FOCUSABLE)) element.setAttribute("tabindex", "-1");
    element.focus();
  }

  function place(element) {
    const scope = element.parentElement && element.parentElement.closest("[id]");
    return { element, scope: scope ? scope.id : null, href: element.getAttribute("href") };
  }

  function resolve(spot) {
    if (spot.element.isConnected) return spot.element;
    const scope = spot.scope && document.getElementById(spot.scope);
    if (!scope) return document.querySelector("main h1");
    const same = Array.from(scope.querySelectorAll("a[href]"))
      .find((link) => spot.href && link.getAttribute("href") === spot.href);
    return same || firstFocusable(scope) || scope;
  }

  const focusLost = () => !document.activeElement || document.activeElement === document.body;
  let opener = null; // what opened the dialog
  let returnTo = null; // where focus went back to, until the user acts again
  let swappedAway = null; // the focused element a swap is replacing
  // Per element sending a request: what had focus inside it as it was sent. A button
  // disabled while the request runs (hx-disabled-elt) drops focus onto <body>.
  const sentFrom = new WeakMap();

  document.addEventListener("htmx:beforeRequest", (event) => {
    const active = document.activeElement;
    if (active && active !== document.body && event.detail.elt.contains(active)) {
      sentFrom.set(event.detail.elt, active);
    }
    const dialog = modal();
    if (event.detail.target !== modalBody() || !dialog || dialog.open) return;
    const from = event.detail.elt === document.body ? document.activeElement : event.detail.elt;
    opener = from && from !== document.body ? place(from) : null;
  });

  document.addEventListener("htmx:beforeSwap", (event) => {
    const config = event.detail.requestConfig;
    const sent = config && sentFrom.get(config.elt);
    if (config) sentFrom.delete(config.elt); // one request's: never a later one's
    const active = focusLost() && sent ? sent : document.activeElement;
    swappedAway = active && event.detail.target.contains(active) ? place(active) : null;
  });

  let opening = false; // content swapped into the closed dialog, to be shown as it settles

  document.addEventListener("htmx:afterSwap", (event) => {
    enhance(event.detail.target);
    const dialog = modal();
    if (event.detail.target === modalBody() && dialog && !dialog.open) opening = true;
  });

  // The dialog opens, and focus moves, once htmx has wired the new content (it does so
  // as it settles, 20 ms after the swap). showModal() focuses the dialog's first control
  // itself: opened at the swap, a quick Tab and Enter sent its form as a plain POST.
  document.addEventListener("htmx:afterSettle", (event) => {
    const target = event.detail.target;
    const dialog = modal();
    if (target === modalBody() && dialog) {
      // Only content that arrived for a closed dialog opens it: one closed meanwhile
      // (Escape while a new key settled) stays closed.
      if (opening && !dialog.open) dialog.showModal();
      opening = false;
      if (dialog.open) {
        focusOn(firstFocusable(target));
        const said = target.querySelector("[role=alert], [role=status], .errors");
        if (said) announce(words(said));
      }
    } else {
      // An outerHTML swap replaced the target: read what now stands in its place. An alert
      // inserted into the page is read out by the browser itself; a status inserted with
      // its words already in it is not, so it is said here. Regions that speak for
      // themselves (aria-live) are left alone.
      const shown = target.isConnected ? target : target.id && document.getElementById(target.id);
      const alert = shown ? shown.querySelector("[role=alert]:not([aria-live])") : null;
      const status = shown ? shown.querySelector("[role=status]:not([aria-live])") : null;
      const spot = swappedAway || returnTo;
      if (focusLost() && spot) {
        // Where focus was is gone with all around it (a form that did its work): onto
        // the outcome, the loudest first (a key the gateway STILL ACCEPTS), so that
        // reading on goes through what changed.
        const gone = !spot.element.isConnected && !(spot.scope && document.getElementById(spot.scope));
        const outcome = alert || status;
        focusOn(gone && outcome ? outcome : resolve(spot));
      }
      // Focus on it reads it already: once is enough.
      if (status && document.activeElement !== status) announce(words(status));
    }
    swappedAway = null;
  });

  // A page that shows one key's state (its own page) is drawn again once a dialog that
  // changed it (rotate, disable) is closed: not before, the dialog may hold a new secret.
  let keysChanged = false;
  document.addEventListener("keysChanged", () => { keysChanged = true; });

  // A closed dialog forgets its content: a shown secret leaves the page with it.
  document.addEventListener("close", (event) => {
    if (event.target !== modal()) return;
    modalBody().replaceChildren();
    if (keysChanged && document.querySelector("[data-redraw-when-keys-change]")) {
      window.location.reload();
      return;
    }
    keysChanged = false;
    returnTo = opener;
    opener = null;
    if (returnTo) focusOn(resolve(returnTo));
  }, true);
  // Leaving the page: the browser's back/forward cache would keep it as it is, a shown
  // secret included, and Back would bring it back. It is forgotten first.
  window.addEventListener("pagehide", () => {
    const body = modalBody();
    if (body) body.replaceChildren();
    closeModal();
  });
  for (const kind of ["keydown", "pointerdown"]) {
    document.addEventListener(kind, () => { returnTo = null; }, true);
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const closer = target.closest("[data-close-dialog]");
    if (closer && modal() && modal().contains(closer)) {
      event.preventDefault();
      closeModal();
      return;
    }
    const refresher = target.closest("[data-refresh-keys]");
    if (refresher && window.htmx && document.getElementById("keys-table")) {
      event.preventDefault();
      window.htmx.trigger(document.body, "keysChanged");
      return;
    }
    const copier = target.closest("[data-copy]");
    if (copier) {
      const source = document.querySelector(copier.getAttribute("data-copy"));
      if (!source) return;
      const done = () => {
        copier.textContent = "Copied";
        announce("Copied: the key is on the clipboard.");
      };
      // The clipboard API needs https or localhost; elsewhere select it for Ctrl+C.
      const fallback = () => {
        selectText(source);
        copier.textContent = "Selected: press Ctrl+C";
        announce("Selected the key: press Ctrl+C to copy it.");
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(source.textContent.trim()).then(done, fallback);
      } else {
        fallback();
      }
    }
  });

  function selectText(element) {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function showError(words) {
    const toast = document.getElementById("htmx-error");
    if (!toast) return;
    toast.textContent = words;
    toast.hidden = false;
    announce(words);
  }

  document.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr ? event.detail.xhr.status : 0;
    showError(status === 403
      ? "You may not do that (403)."
      : "That did not work (" + (status || "no answer") + "). Reload the page and try again.");
  });

  // No answer at all (the connection broke, a proxy reset it): the request may or may
  // not have been carried out, and the page must not look as if nothing was clicked.
  document.addEventListener("htmx:sendError", () => {
    showError("No answer from t0admin (the connection broke): it is not known whether that " +
      "was done. Check the page again before going on; sending it again is safe, as " +
      "nothing is done twice.");
  });

  // Live character counters, and the custom date shown only for "Custom".
  function enhance(root) {
    root.querySelectorAll("input[data-counter]").forEach((input) => {
      const counter = document.querySelector('[data-counter-for="' + input.id + '"]');
      if (!counter || input.dataset.counterBound) return;
      input.dataset.counterBound = "1";
      const max = input.getAttribute("maxlength");
      const update = () => { counter.textContent = input.value.length + "/" + max; };
      input.addEventListener("input", update);
      update();
    });
    root.querySelectorAll("select[name=expiration]").forEach((select) => {
      const custom = select.form && select.form.querySelector("[data-show-when-custom]");
      if (!custom) return;
      const update = () => { custom.hidden = select.value !== "custom"; };
      select.addEventListener("change", update);
      update();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    enhance(document);
    // First visit (or a new zone): this page was drawn in UTC; redraw the list in ours.
    if (zoneChanged && window.htmx && document.getElementById("keys-table")) {
      window.htmx.trigger(document.body, "keysChanged");
    }
  });
})();
