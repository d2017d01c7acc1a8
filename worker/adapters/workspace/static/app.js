// Conveniences only; every page works without this file.
// Ask before unsubscribing a lead (it cannot be undone from here).
document.addEventListener("submit", function (ev) {
  var button = ev.submitter;
  if (button && button.value === "unsubscribe" && !window.confirm("Unsubscribe this lead from every campaign?")) {
    ev.preventDefault();
  }
});
