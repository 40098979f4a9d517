"""Chinese personal names split into family and given name (HumanName.family / HumanName.given).

Local data sets carry a person's name as one string (姓名, DE02.01.039.00). Han names put the
surname first, without a separator: one character for most surnames, two for the compound
surnames (复姓) listed below. A name is split only when the split is unambiguous in that sense:
every character is a CJK ideograph and the name has 2–6 characters. Names of other shapes — ethnic
minority names written with a middle dot (买买提·艾力), names in Latin script, names with spaces
or digits — keep ``text`` only, which search by ``name`` still finds.
"""

from __future__ import annotations

import re

COMPOUND_SURNAMES = frozenset((
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "令狐", "夏侯", "轩辕", "端木", "独孤", "南宫", "西门", "百里", "呼延", "澹台", "公冶", "宗政",
    "濮阳", "淳于", "单于", "太叔", "申屠", "仲孙", "钟离", "闻人", "赫连", "万俟", "司空", "拓跋",
    "第五", "梁丘", "左丘", "东郭", "羊舌", "微生", "公羊", "谷梁", "乐正", "壤驷", "公良", "漆雕",
    "巫马", "颛孙", "子车", "亓官", "司寇", "公西", "闾丘", "段干", "鲜于", "东门", "南门", "呼衍",
))
"""Two-character surnames (复姓) in use today, from the 百家姓 list and household registration usage."""

_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]{2,6}")


def split_chinese_name(text: str) -> tuple[str, str] | None:
    """``"欧阳娜娜"`` -> ``("欧阳", "娜娜")``; ``"王芳"`` -> ``("王", "芳")``; None when not unambiguous."""
    name = text.strip()
    if not _HAN.fullmatch(name):
        return None
    size = 2 if name[:2] in COMPOUND_SURNAMES and len(name) > 2 else 1
    return name[:size], name[size:]
