// Portico's portal: progressive enhancement only. Every form works without this script.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: shown only where they can work.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const input = document.getElementById(button.dataset.copy);
    if (!input) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      input.select();
      let copied = false;
      try {
        await navigator.clipboard.writeText(input.value);
        copied = true;
      } catch {
        copied = document.execCommand && document.execCommand("copy");
      }
      button.textContent = copied ? "Copied" : "Press Ctrl+C";
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }

  // The URL fields show the chosen identity provider's own endpoints.
  const provider = document.getElementById("oauth_provider");
  if (provider) {
    const examples = {
      oauth_authorization_url: ["authorizationUrl", "https://login.example.com/oauth2/authorize"],
      oauth_token_url: ["tokenUrl", "https://login.example.com/oauth2/token"],
    };
    provider.addEventListener("change", () => {
      const option = provider.selectedOptions[0];
      for (const [id, [key, example]] of Object.entries(examples)) {
        const input = document.getElementById(id);
        if (input) input.placeholder = (option && option.dataset[key]) || example;
      }
    });
  }

  // Dialogs: modal (focus stays inside), Escape leaves by the cancel link.
  for (const dialog of document.querySelectorAll("dialog[data-modal]")) {
    if (typeof dialog.showModal !== "function") continue;
    dialog.close();
    dialog.showModal();
    const first = dialog.querySelector(".field-error ~ input, [aria-invalid='true'], input:not([type='hidden']), select, button");
    if (first) first.focus();
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      window.location.href = dialog.dataset.cancel || "/";
    });
  }

  // After a refused form, the summary of its errors gets the focus.
  const summary = document.querySelector(".error-summary");
  if (summary && !document.querySelector("dialog[data-modal]")) summary.focus();
});
