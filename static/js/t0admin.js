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

  document.addEventListener("htmx:afterSwap", (event) => {
    const dialog = modal();
    if (event.detail.target === modalBody() && dialog && !dialog.open) dialog.showModal();
    enhance(event.detail.target);
  });

  // A closed dialog forgets its content: a shown secret leaves the page with it.
  document.addEventListener("close", (event) => {
    if (event.target === modal()) modalBody().replaceChildren();
  }, true);

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
    if (refresher && window.htmx) {
      event.preventDefault();
      window.htmx.trigger(document.body, "keysChanged");
      return;
    }
    const copier = target.closest("[data-copy]");
    if (copier) {
      const source = document.querySelector(copier.getAttribute("data-copy"));
      if (!source) return;
      const done = () => { copier.textContent = "Copied"; };
      // The clipboard API needs https or localhost; elsewhere select it for Ctrl+C.
      const fallback = () => { selectText(source); copier.textContent = "Selected: press Ctrl+C"; };
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

  document.addEventListener("htmx:responseError", (event) => {
    const toast = document.getElementById("htmx-error");
    if (!toast) return;
    const status = event.detail.xhr ? event.detail.xhr.status : 0;
    toast.textContent = status === 403
      ? "You may not do that (403)."
      : "That did not work (" + (status || "no answer") + "). Reload the page and try again.";
    toast.hidden = false;
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
