import json
from pathlib import Path
DATA = Path(__file__).parent / "data"

def test_explore(make_app):
    app = make_app()
    c = app.test_client()
    out = []
    def show(label, r):
        body = r.get_data(as_text=True) if r.mimetype == "application/json" else f"<{r.mimetype} {len(r.data)} bytes>"
        out.append(f"== {label}: {r.status_code} {r.mimetype}\n{body[:1500]}")
    for name in sorted(p.name for p in DATA.iterdir() if p.suffix in (".xlsx", ".xls", ".csv")):
        r = c.post("/upload-excel", data={"file": (open(DATA / name, "rb"), name)}, content_type="multipart/form-data")
        show("upload " + name, r)
    show("upload nofile", c.post("/upload-excel", data={}, content_type="multipart/form-data"))
    show("upload json", c.post("/upload-excel", json={"a": 1}))
    show("promo general", c.post("/generate-promo", json={"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness", "past_engagement": "Low"}))
    show("promo audience", c.post("/generate-promo", json={"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness", "past_engagement": "Low", "location": "Bedok", "gender": "F"}))
    show("promo cluster", c.post("/generate-promo", json={"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness", "past_engagement": "Low", "cluster_id": 0}))
    show("promo cluster 999", c.post("/generate-promo", json={"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness", "past_engagement": "Low", "cluster_id": 999}))
    show("promo bad enum", c.post("/generate-promo", json={"objective": "Increase sales", "industry": "Retail", "funnel_stage": "<script>x</script>", "past_engagement": "Low"}))
    show("promo nonjson", c.post("/generate-promo", data="hello", content_type="text/plain"))
    show("promo badjson", c.post("/generate-promo", data="{bad", content_type="application/json"))
    show("promo list", c.post("/generate-promo", json=[1,2]))
    show("promo long", c.post("/generate-promo", json={"objective": "x"*5000, "industry": "Retail", "funnel_stage": "Awareness", "past_engagement": "Low"}))
    show("post cluster", c.post("/generate-post", json={"cluster_id": 0, "objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness", "past_engagement": "Low"}))
    show("post cluster nocampaign", c.post("/generate-post", json={"cluster_id": 0}))
    show("post upload unknown", c.post("/generate-post", json={"cluster_id": 0, "upload_id": "0"*32}))
    show("personas", c.get("/personas"))
    show("persona 0", c.get("/personas/0"))
    show("persona 999", c.get("/personas/999"))
    show("persona -1", c.get("/personas/-1"))
    show("persona abc", c.get("/personas/abc"))
    show("options", c.get("/options"))
    show("health", c.get("/health"))
    show("png", c.get("/model/segments.png"))
    show("404", c.get("/nope"))
    show("405", c.get("/generate-promo"))
    show("export unknown", c.get("/uploads/" + "0"*32 + "/segments.xlsx"))
    show("export bad", c.get("/uploads/xyz/segments.xlsx"))
    show("openapi", c.get("/openapi.json"))
    show("docs", c.get("/docs"))
    show("docs swagger", c.get("/docs/swagger"))
    show("preflight ok", c.options("/generate-promo", headers={"Origin": "http://localhost:4200", "Access-Control-Request-Method": "POST"}))
    out.append(str(c.options("/generate-promo", headers={"Origin": "http://localhost:4200", "Access-Control-Request-Method": "POST"}).headers))
    out.append(str(c.options("/generate-promo", headers={"Origin": "http://evil.com", "Access-Control-Request-Method": "POST"}).headers))
    Path('/tmp/explore/out.txt').write_text('\n'.join(out)); out.clear()

def test_nomodel(no_model_client):
    out=[]
    def show(label, r):
        body = r.get_data(as_text=True) if r.mimetype == 'application/json' else f'<{r.mimetype} {len(r.data)} bytes>'
        out.append(f'== {label}: {r.status_code} {r.mimetype}\n{body[:1500]}')
    nm = no_model_client
    for p in ["/health", "/personas", "/options", "/model/segments.png", "/personas/0"]:
        show("nomodel " + p, nm.get(p))
    show("nomodel promo", nm.post("/generate-promo", json={"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness", "past_engagement": "Low"}))
    show("nomodel upload", nm.post("/upload-excel", data={"file": (open(DATA / "customers.csv", "rb"), "c.csv")}, content_type="multipart/form-data"))
    Path("/tmp/explore/out2.txt").write_text("\n".join(out))
