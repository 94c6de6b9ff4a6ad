// TTS Studio page behaviour: keyboard, dropdown fix, result into view. Loaded in the page head.
(() => {
  const combobox = (el) => el instanceof HTMLInputElement && el.getAttribute("role") === "combobox";

  document.addEventListener("keydown", (e) => {
    // Gradio 6.31's Dropdown handles every key asynchronously (after `await tick()`) and sets its
    // list open for any key but Escape, so a Tab re-opens the list after focus has left it; the
    // list then stays drawn, and Escape or a click no longer reach it. Tab is not the dropdown's
    // business: it never sees it (focus still moves on, the list closes on blur).
    if (e.key === "Tab" && combobox(e.target)) e.stopPropagation();
    // Ctrl+Enter (Cmd+Enter) in the text box: Generate.
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && e.target.closest && e.target.closest("#text")) {
      e.preventDefault();
      document.querySelector("#generate")?.click();
    }
  }, true);

  // On a narrow screen the result column sits below the form: bring it into view on Generate/Stream.
  const NARROW_PX = 768;
  document.addEventListener("click", (e) => {
    if (window.innerWidth < NARROW_PX && e.target.closest && e.target.closest("#generate, #stream")) {
      setTimeout(() => document.querySelector("#result-column")?.scrollIntoView({block: "start"}), 0);
    }
  }, true);
})();
