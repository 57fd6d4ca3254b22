// The print view's "Print" button (the CSP allows no inline script).
document.getElementById("print")?.addEventListener("click", () => window.print());
