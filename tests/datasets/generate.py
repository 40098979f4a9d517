"""Realistic local data sets for tests and benchmarks: Chinese names and addresses, valid and broken records.

:func:`person_rows`, :func:`encounter_rows`, :func:`diagnosis_rows` and :func:`lab_rows` give rows keyed
by Chinese column names (as hospital exports have them; a few columns use data-element ids) for
``n`` generated people; ``faults`` mixes in deliberately invalid records (bad check digits,
impossible dates, unknown codes, duplicates). :func:`to_csv` writes UTF-8 or GB18030,
:func:`to_json` and :func:`to_xml` the other two accepted formats. Deterministic for a seed.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from datetime import date, timedelta
from xml.sax.saxutils import escape

from profiles import resident_id

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华平刚桂兰"
PLACES = [("440304", "广东省", "深圳市", "福田区", "福华一路"), ("510107", "四川省", "成都市", "武侯区", "人民南路"),
          ("110105", "北京市", "北京市", "朝阳区", "建国路"), ("330106", "浙江省", "杭州市", "西湖区", "文三路")]
INSTITUTIONS = [("455835013", "深圳市福田区人民医院"), ("450755021", "成都市武侯区社区卫生服务中心")]
LAB_ITEMS = [("HGB", "718-7", "血红蛋白", "g/L", (110, 175), "130-175"),
             ("GLU", "14771-0", "空腹血糖", "mmol/L", (3.5, 9.0), "3.9-6.1"),
             ("WBC", "6690-2", "白细胞计数", "10*9/L", (3.0, 12.0), "3.5-9.5")]
MORE_LAB_ITEMS = [("ALT", "1742-6", "丙氨酸氨基转移酶", "U/L", (5, 80), "9-50"),
                  ("CREA", "14682-9", "肌酐", "umol/L", (40, 130), "57-111")]
"""Two more items, for benchmarks that want five results per report."""
ICD = [("I10", "特发性(原发性)高血压"), ("E11.9", "2型糖尿病不伴有并发症"), ("J06.9", "急性上呼吸道感染")]


@dataclass(frozen=True)
class Person:
    name: str
    sex: str
    born: date
    id_number: str
    phone: str
    place: tuple[str, str, str, str, str]
    card: str


def id_number(region: str, born: date, sex: str, rng: random.Random) -> str:
    """A valid 18-character number: region, birth date, a sequence whose 17th digit is odd for men."""
    last = rng.randrange(0, 5) * 2 + (1 if sex == "1" else 0)
    first17 = f"{region}{born:%Y%m%d}{rng.randrange(0, 100):02d}{last}"
    return first17 + resident_id.check_character(first17)


def people(n: int, seed: int = 7) -> list[Person]:
    rng = random.Random(seed)
    found = []
    for i in range(n):
        sex = rng.choice("12")
        born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 30000))
        place = rng.choice(PLACES)
        number = id_number(place[0], born, sex, rng)
        assert resident_id.sex_code(number) == sex
        found.append(Person(rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))), sex, born,
                            number, f"13{rng.randrange(10**8, 10**9)}", place, f"H{i:08d}"))
    return found


def person_row(p: Person, institution: tuple[str, str], record_no: int) -> dict[str, str]:
    region, province, city, district, street = p.place
    return {"医疗卫生机构代码": institution[0], "医疗卫生机构名称": institution[1], "姓名": p.name,
            "性别代码": p.sex, "出生日期": f"{p.born:%Y%m%d}", "身份证件类别代码": "01", "身份证件号码": p.id_number,
            "居民健康卡号": p.card, "DE01.00.009.00": f"{region}{record_no:011d}", "病案号": f"BA{record_no:06d}",
            "民族": "01", "婚姻状况代码": "20", "本人电话号码": p.phone, "行政区划代码": region,
            "现住址-省(自治区、直辖市)": province,
            "现住址-市(地区、州)": city, "现住址-县(区)": district, "门牌号码": f"{street}{record_no}号",
            "责任医生编号": f"YS{record_no % 7:04d}", "责任医生姓名": "刘芳", "建档日期": "20230105"}


def person_rows(n: int, *, seed: int = 7, faults: bool = True) -> list[dict[str, str]]:
    """``n`` valid people, then (with ``faults``) one record per fault kind, each named in ``备注``."""
    everyone = people(n, seed)
    rows = [person_row(p, INSTITUTIONS[i % 2], i + 1) for i, p in enumerate(everyone)]
    if faults:
        base = everyone[0]
        bad = [
            ("bad-check-digit", {"身份证件号码": base.id_number[:17] + ("0" if base.id_number[17] != "0" else "1")}),
            ("impossible-date", {"出生日期": "19900230"}),
            ("unknown-sex-code", {"性别代码": "7"}),
            ("birth-mismatch", {"出生日期": "20000101"}),
            ("missing-name", {"姓名": ""}),
        ]
        for n_bad, (reason, change) in enumerate(bad):
            p = people(1, seed + 100 + n_bad)[0]
            rows.append({**person_row(p, INSTITUTIONS[0], 9000 + n_bad), **change, "备注": reason})
    return rows


def _who(p: Person, i: int) -> dict[str, str]:
    """The patient columns every clinical data set carries, and the sending institution."""
    return {"医疗卫生机构代码": INSTITUTIONS[i % 2][0], "姓名": p.name, "性别代码": p.sex,
            "出生日期": f"{p.born:%Y%m%d}", "身份证件号码": p.id_number}


def encounter_rows(persons: list[Person]) -> list[dict[str, str]]:
    rows = []
    for i, p in enumerate(persons):
        inpatient = i % 3 == 2
        start = date(2024, 3, 1) + timedelta(days=i % 200)
        row = {**_who(p, i), "患者类型代码": "3" if inpatient else "1", "科室名称": "内科"}
        if inpatient:
            row.update({"住院号": f"ZY{i:06d}", "入院日期时间": f"{start:%Y%m%d}T083000",
                        "出院日期时间": f"{start + timedelta(days=5):%Y%m%d}T100000"})
        else:
            row.update({"门(急)诊号": f"MZ{i:06d}", "就诊日期时间": f"{start:%Y%m%d}T093000"})
        rows.append(row)
    return rows


def diagnosis_rows(persons: list[Person]) -> list[dict[str, str]]:
    return [{**_who(p, i), **({"住院号": f"ZY{i:06d}"} if i % 3 == 2 else {"门(急)诊号": f"MZ{i:06d}"}),
             "诊断代码": ICD[i % 3][0], "诊断名称": ICD[i % 3][1],
             "诊断日期": f"{date(2024, 3, 1) + timedelta(days=i % 200):%Y%m%d}"} for i, p in enumerate(persons)]


def lab_rows(persons: list[Person], *, seed: int = 11,
             items: list[tuple[str, str, str, str, tuple[float, float], str]] | None = None) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i, p in enumerate(persons):
        day = date(2024, 5, 1) + timedelta(days=i % 100)
        for code, loinc, name, unit, (low, high), ref in items or LAB_ITEMS:
            value = round(rng.uniform(low, high), 1)
            rows.append({**_who(p, i), "报告单编号": f"JY{i:07d}",
                         "检验类别": "生化", "检验项目代码": code, "LOINC编码": loinc, "检验项目名称": name,
                         "检验定量结果": str(value), "定量结果计量单位": unit, "检验结果代码": "1",
                         "参考值范围": ref, "检验标本编号": f"BB{i:07d}", "标本类别": "静脉血",
                         "标本采样日期时间": f"{day:%Y%m%d}T080000", "检验报告日期": f"{day:%Y%m%d}T140000"})
    return rows


def vital_rows(persons: list[Person], *, seed: int = 13) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i, p in enumerate(persons):
        systolic = rng.randrange(105, 170)
        rows.append({**_who(p, i), "测量记录编号": f"TZ{i:07d}", "收缩压": str(systolic),
                     "舒张压": str(systolic - rng.randrange(25, 55)), "身高": f"{rng.uniform(150, 185):.1f}",
                     "体重": f"{rng.uniform(45, 95):.1f}", "血糖检测值": f"{rng.uniform(4, 9):.1f}",
                     "心率": str(rng.randrange(58, 100)), "腹围": f"{rng.uniform(68, 105):.1f}",
                     "测量日期时间": f"{date(2024, 7, 1) + timedelta(days=i % 90):%Y%m%d}T091000"})
    return rows


EXAMS = [("CT", "胸部CT平扫", "双肺纹理清晰，未见明显实质性病变。", "双肺未见明显异常。"),
         ("RUS", "腹部彩超", "肝脏大小形态正常，实质回声均匀。", "肝胆胰脾未见明显异常。"),
         ("EC", "常规心电图", "窦性心律，心率72次/分。", "正常心电图。")]


def exam_rows(persons: list[Person]) -> list[dict[str, str]]:
    rows = []
    for i, p in enumerate(persons):
        kind, item, findings, impression = EXAMS[i % len(EXAMS)]
        day = date(2024, 6, 1) + timedelta(days=i % 60)
        row = {**_who(p, i), "检查报告单号": f"JC{i:07d}", "检查类型代码": kind, "检查项目名称": item,
               "检查报告结果-客观所见": findings, "检查报告结果-主观提示": impression,
               "检查日期时间": f"{day:%Y%m%d}T162000", "检查报告日期时间": f"{day:%Y%m%d}T174500"}
        if kind == "CT":
            row["检查UID"] = f"1.2.840.113619.2.55.3.{i + 1}"
        rows.append(row)
    return rows


HYPERTENSION_DRUGS = [("硝苯地平控释片", "每日1次，每次30mg，口服"), ("苯磺酸氨氯地平片", "每日1次，每次5mg，口服"),
                      ("缬沙坦胶囊", "每日1次，每次80mg，口服"), ("氢氯噻嗪片", "每日1次，每次12.5mg，口服"),
                      ("酒石酸美托洛尔片", "每日2次，每次25mg，口服")]
DIABETES_DRUGS = [("盐酸二甲双胍片", "每日3次，每次0.5g，餐中服"), ("格列美脲片", "每日1次，每次2mg，早餐前"),
                  ("阿卡波糖片", "每日3次，每次50mg，随第一口饭嚼服"),
                  ("甘精胰岛素注射液", "每日1次，每次12U，睡前皮下注射")]


def followup_rows(persons: list[Person], *, diabetes: bool = False, seed: int = 17) -> list[dict[str, str]]:
    """高血压 (or 2型糖尿病) follow-up visits: two per person, three months apart, each with 服药依从性 (1 规律,
    2 间断, 3 不服药), one or two drugs unless 不服药 (the second only at some visits), and the next visit
    three months later (下次随访日期)."""
    rng = random.Random(seed)
    rows = []
    for i, p in enumerate(persons):
        for visit in range(2):
            systolic = rng.randrange(120, 175)
            day = date(2024, 4, 1) + timedelta(days=90 * visit + i % 30)
            row = {**_who(p, i), "城乡居民健康档案编号": f"{p.place[0]}{i:011d}", "随访记录编号": f"SF{i:06d}{visit}",
                   "随访医生编号": f"YS{i % 5:04d}", "随访医生姓名": "陈静",
                   "随访日期": f"{day:%Y%m%d}",
                   "随访方式": rng.choice("123"), "收缩压": str(systolic),
                   "舒张压": str(systolic - rng.randrange(30, 50)),
                   "体重": f"{rng.uniform(50, 90):.1f}", "此次随访分类": rng.choice("12"), "确诊日期": "20230315"}
            if diabetes:
                row["空腹血糖值"] = f"{rng.uniform(5, 11):.1f}"
            adherence = "3" if (i + visit) % 4 == 3 else rng.choice("112")
            row["服药依从性"] = adherence
            if adherence != "3":
                drugs = rng.sample(DIABETES_DRUGS if diabetes else HYPERTENSION_DRUGS, 2 if (i + visit) % 2 else 1)
                for n, (name, dosage) in enumerate(drugs, 1):
                    row[f"药物名称{n}"], row[f"用法用量{n}"] = name, dosage
            row["下次随访日期"] = f"{day + timedelta(days=91):%Y%m%d}"
            rows.append(row)
    return rows


def to_csv(rows: list[dict[str, str]], encoding: str = "utf-8") -> bytes:
    headers: dict[str, None] = {}
    for row in rows:
        headers.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(headers), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def to_json(rows: list[dict[str, str]]) -> bytes:
    return json.dumps(rows, ensure_ascii=False).encode("utf-8")


def to_xml(rows: list[dict[str, str]], headers: dict[str, str]) -> bytes:
    """XML with element-id tags (``headers`` maps the Chinese column names to data-element ids)."""
    body = "".join("<record>" + "".join(f"<{headers.get(k, k)}>{escape(v)}</{headers.get(k, k)}>"
                                        for k, v in row.items() if v) + "</record>" for row in rows)
    return f"<?xml version='1.0' encoding='UTF-8'?><records>{body}</records>".encode()
