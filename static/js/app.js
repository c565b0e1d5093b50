// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // Organization switcher: submit on change, the button stays for keyboard users without JS.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    var button = select.form.querySelector("[data-autosubmit-button]");
    if (button) button.classList.add("visually-hidden");
    select.addEventListener("change", function () { select.form.requestSubmit(); });
  });

  // Forms with data-confirm ask first (remove a member, revoke a key).
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // Copy buttons: data-copy names the id of the input whose value is copied.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-copy"));
      var status = button.closest(".field") && button.closest(".field").querySelector("[data-copy-status]");
      navigator.clipboard.writeText(input.value).then(function () {
        button.textContent = "Copied";
        if (status) status.textContent = "Copied to the clipboard.";
      }, function () {
        input.select();
        if (status) status.textContent = "Copying failed; the key is selected, press Ctrl+C or ⌘C.";
      });
    });
  });

  document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });
})();
