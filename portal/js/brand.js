// The operator's brand (brand.json): name, logo, tagline and colours, applied as CSS custom
// properties on the root element (CSSOM, which the CSP allows; never inline style attributes).

const DEFAULT_BRAND = { name: "DCV Fleet", logo: "brand/logo.svg", tagline: "", colors: {} };

const COLOR_PROPERTIES = {
  primary: "--brand-primary",
  primaryText: "--brand-primary-text",
  background: "--brand-background",
  surface: "--brand-surface",
  text: "--brand-text",
  accent: "--brand-accent",
};

/** brand.json, or the default brand (the stylesheet's colours) if it cannot be read. */
export async function loadBrand() {
  try {
    const response = await fetch("brand.json", { cache: "no-cache" });
    if (!response.ok) return DEFAULT_BRAND;
    const brand = await response.json();
    return {
      name: typeof brand.name === "string" && brand.name ? brand.name : DEFAULT_BRAND.name,
      logo: typeof brand.logo === "string" && brand.logo ? brand.logo : DEFAULT_BRAND.logo,
      tagline: typeof brand.tagline === "string" ? brand.tagline : "",
      colors: brand.colors && typeof brand.colors === "object" ? brand.colors : {},
    };
  } catch {
    return DEFAULT_BRAND;
  }
}

export function applyBrand(brand) {
  const root = document.documentElement.style;
  for (const [key, property] of Object.entries(COLOR_PROPERTIES)) {
    const value = brand.colors[key];
    if (typeof value === "string" && CSS.supports("color", value)) {
      root.setProperty(property, value);
    }
  }
  for (const img of document.querySelectorAll("[data-brand-logo]")) img.src = brand.logo;
  for (const el of document.querySelectorAll("[data-brand-name]")) el.textContent = brand.name;
  document.querySelector("link[rel=icon]").href = brand.logo;
  document.title = brand.name;
}
