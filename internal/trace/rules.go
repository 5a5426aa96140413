package trace

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A rule finds places in a text where several wordings say the same
// thing. Each place it finds is a slot of the document: the marker writes
// one of the variants there for each recipient, chosen by a keyed
// function of the recipient and the slot, and the tracer reads which one
// a leaked text carries.
//
// The rules are conservative: a variant must mean what the original says
// wherever the pattern matches, at the price of finding fewer places. A
// rule that could go wrong one way finds only the safe form (oneWay:
// every "prior to" can be "before", not every "before" "prior to"). They
// work on words, case and punctuation, which survive retyping; what lives
// in whitespace or invisible characters is a separate, fragile layer
// (trace.go).
type rule struct {
	name string
	re   *regexp.Regexp
	// group is the submatch the variants replace; the rest of the match
	// is context that must be there.
	group    int
	variants []string
	// render, if set, gives the variants for the text of a match's group
	// (nil: not a place after all); the first is the original's form.
	render func(group string) []string
	// skip, if set, refuses a match: m holds its submatch indices in doc,
	// as regexp gives them.
	skip func(doc string, m []int) bool
	// cased: the variants differ in case, which the tracer then compares.
	cased bool
	// words, if set, are the variants' tokens (where tokens(variant) alone
	// would lose them: a lone hyphen).
	words [][]string
}

// variantsOf gives the variants of a match of r whose group is g.
func (r *rule) variantsOf(g string) []string {
	if r.render != nil {
		return r.render(g)
	}
	return r.variants
}

// phrase is the pattern of a phrase: whitespace runs between its words,
// either apostrophe.
func phrase(p string) string {
	p = regexp.QuoteMeta(p)
	p = strings.ReplaceAll(p, " ", `\s+`)
	return strings.ReplaceAll(p, "'", `['’]`)
}

// oneWay is a rule that finds the forms in from, whole words,
// case-insensitively, and writes any variant.
func oneWay(name string, from []string, variants ...string) rule {
	alts := make([]string, len(from))
	for i, v := range from {
		alts[i] = phrase(v)
	}
	end := `\b`
	if last := from[0][len(from[0])-1]; last == '.' || last == ',' {
		end = `` // no word boundary after punctuation
	}
	return rule{name: name, re: regexp.MustCompile(`(?i)\b(` + strings.Join(alts, "|") + `)` + end), group: 1, variants: variants,
		skip: properNoun}
}

// wordRule is a rule for interchangeable words or phrases, each found.
func wordRule(name string, variants ...string) rule { return oneWay(name, variants, variants...) }

// contextRule is a rule whose variants replace submatch 1 of pattern.
func contextRule(name, pattern string, variants ...string) rule {
	return rule{name: name, re: regexp.MustCompile(pattern), group: 1, variants: variants}
}

// sentenceStart reports whether doc[i:] begins a sentence (or a line).
func sentenceStart(doc string, i int) bool {
	s := strings.TrimRightFunc(doc[:i], func(r rune) bool { return r == ' ' || r == '\t' || r == '"' || r == '\'' || r == '(' })
	if s == "" {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s)
	return strings.ContainsRune(".!?:\n-", r)
}

// properNoun refuses a match that is capitalised in mid-sentence: part
// of a name ("the Organisation for Security", "Labour"), not to be
// respelt.
func properNoun(doc string, m []int) bool {
	r, _ := utf8.DecodeRuneInString(doc[m[2]:])
	return unicode.IsUpper(r) && !sentenceStart(doc, m[2])
}

// spellings are the British and American spellings the marker may
// exchange, both correct: lower-case words only, and capitalised ones at
// the start of a sentence (elsewhere a capital may begin a name).
var spellings = func() [][2]string {
	var out [][2]string
	// -ise / -ize, with their inflections and -isation / -ization.
	for _, stem := range strings.Fields(`organ recogn priorit emphas real final author minim maxim summar stabil
		modern normal standard harmon mobil util special subsid character categor central legal neutral capital
		jeopard scrutin apolog critic formal optim penal privat revital decentral demilitar democrat destabil
		marginal operational rational synchron visual immun hospital industrial urban legitim`) {
		for _, end := range []string{"e", "es", "ed", "ing", "ation", "ations"} {
			out = append(out, [2]string{stem + "is" + end, stem + "iz" + end})
		}
	}
	for _, w := range strings.Fields(`analyse:analyze analysed:analyzed analysing:analyzing paralysed:paralyzed
		favour:favor favours:favors favoured:favored favourable:favorable unfavourable:unfavorable labour:labor
		behaviour:behavior endeavour:endeavor endeavours:endeavors endeavoured:endeavored honour:honor honoured:honored
		neighbour:neighbor neighbouring:neighboring neighbours:neighbors harbour:harbor harbours:harbors rumour:rumor
		rumours:rumors vigour:vigor colour:color centre:center centres:centers metre:meter metres:meters
		kilometre:kilometer kilometres:kilometers litre:liter litres:liters theatre:theater defence:defense
		offence:offense offences:offenses licence:license pretence:pretense programme:program programmes:programs
		travelled:traveled travelling:traveling cancelled:canceled cancelling:canceling labelled:labeled
		modelled:modeled signalled:signaled fuelled:fueled channelled:channeled counselled:counseled
		catalogue:catalog judgement:judgment ageing:aging fulfil:fulfill fulfils:fulfills enrol:enroll
		enrolment:enrollment instalment:installment enquiry:inquiry enquiries:inquiries enquired:inquired
		towards:toward amongst:among whilst:while learnt:learned spelt:spelled dialling:dialing grey:gray
		cheque:check manoeuvre:maneuver manoeuvres:maneuvers sceptical:skeptical practise:practice
		adviser:advisor advisers:advisors co-operation:cooperation co-operate:cooperate co-operative:cooperative
		co-ordinate:coordinate co-ordinated:coordinated co-ordination:coordination co-ordinating:coordinating
		ceasefire:cease-fire frontrunner:front-runner e-mail:email peacekeeping:peace-keeping peacekeepers:peace-keepers
		counter-terrorism:counterterrorism pre-conditions:preconditions re-establish:reestablish post-war:postwar
		worldwide:world-wide nationwide:nation-wide decision-making:decision_making policy-makers:policymakers
		follow-up:follow_up stand-off:standoff short-list:shortlist`) {
		b, a, ok := strings.Cut(strings.ReplaceAll(w, "_", " "), ":")
		if !ok {
			panic("trace: spelling without its pair: " + w)
		}
		out = append(out, [2]string{b, a})
	}
	return out
}()

// spellingRule exchanges the spellings: it finds either, as a word.
var spellingRule = func() rule {
	index := map[string][]string{}
	var alts []string
	oneWayOnly := map[string]bool{"whilst": true, "cheque": true, "practise": true, "programme": true,
		"programmes": true, "licence": true, "metre": true, "metres": true, "learnt": true, "spelt": true,
		"follow-up": true}
	for _, p := range spellings {
		b, a := p[0], p[1]
		index[b] = []string{b, a}
		alts = append(alts, b)
		if !oneWayOnly[b] {
			// "while" is also a noun ("a while"), "check" a verb,
			// "practice" and "license" nouns, "program" software, "meter" a
			// device, "learned" an adjective: those are not respelt.
			index[a] = []string{a, b}
			alts = append(alts, a)
		}
	}
	return rule{name: "spelling", re: regexp.MustCompile(`(?i)\b(` + strings.Join(alts, "|") + `)\b`), group: 1,
		render: func(g string) []string {
			vs := index[strings.ToLower(g)]
			if vs == nil {
				return nil
			}
			return []string{strings.ToLower(g), vs[1]}
		},
		skip: properNoun}
}()

// Reporting verbs and the words that can stand for them, with or without
// "that" where a clause follows ("The Minister said that the talks…",
// "The Minister stated the talks…"). Verbs that take an object as well
// (told, warned, assured) keep their "that".
var reporting = [][]string{
	{"said that", "said", "stated that", "stated"},
	{"added that", "added", "went on to say that"},
	{"noted that", "observed that", "remarked that"},
	{"pointed out that", "noted that", "observed that"},
	{"stressed that", "emphasised that", "emphasized that", "underlined that", "underscored that"},
	{"agreed that", "agreed"},
	{"explained that", "explained"},
	{"suggested that", "proposed that"},
	{"believed that", "believed", "considered that"},
	{"hoped that", "hoped"},
	{"confirmed that", "confirmed"},
	{"acknowledged that", "accepted that", "recognised that"},
	{"argued that", "contended that", "maintained that"},
	{"warned that", "cautioned that"},
	{"reiterated that", "repeated that"},
	{"indicated that", "signalled that", "signaled that"},
	{"insisted that", "insisted"},
	{"replied that", "replied", "responded that"},
	{"recalled that", "recalled"},
	{"reported that", "reported"},
	{"felt that", "felt"},
	{"made clear that", "made it clear that"},
	{"asked whether", "asked if", "enquired whether", "inquired whether"},
	{"mentioned that", "remarked that"},
	{"says that", "says", "states that", "states"},
	{"notes that", "observes that", "remarks that"},
	{"believes that", "believes", "considers that"},
	{"hopes that", "hopes"},
	{"agrees that", "agrees"},
	{"stresses that", "emphasises that", "emphasizes that", "underlines that"},
	{"argues that", "contends that", "maintains that"},
	{"warns that", "cautions that"},
	{"thinks that", "thinks"},
	{"thought that", "thought"},
	{"knew that", "knew"},
	{"think that", "think"},
	{"believe that", "believe"},
	{"hope that", "hope"},
	{"understood that", "understood"},
	{"assumed that", "assumed"},
	{"judged that", "judged", "assessed that"},
	{"assess that", "judge that"},
	{"assesses that", "judges that"},
	{"expressed concern", "voiced concern"},
	{"expressed concerns", "voiced concerns"},
}

var reportingRule = func() rule {
	index := map[string][]string{}
	var alts []string
	for _, vs := range reporting {
		for _, v := range vs {
			if _, ok := index[v]; ok || !strings.Contains(v, " ") {
				continue // found only with its "that": alone it may take an object
			}
			index[v] = vs
			alts = append(alts, phrase(v))
		}
	}
	// Longest first, so that "pointed out that" is not "noted that".
	for i := range alts {
		for j := i + 1; j < len(alts); j++ {
			if len(alts[j]) > len(alts[i]) {
				alts[i], alts[j] = alts[j], alts[i]
			}
		}
	}
	return rule{name: "reporting", re: regexp.MustCompile(`\b(` + strings.Join(alts, "|") + `)\b`), group: 1,
		render: func(g string) []string {
			g = strings.Join(strings.Fields(strings.ReplaceAll(g, "’", "'")), " ")
			vs := index[g]
			if vs == nil {
				return nil
			}
			out := []string{g}
			for _, v := range vs {
				if v != g {
					out = append(out, v)
				}
			}
			return out
		}}
}()

// Titles and institutions after "the", which style guides capitalise or
// not when no name follows: "the Minister said", "the minister said".
var titleRule = rule{
	name: "title-case",
	re: regexp.MustCompile(`\b[Tt]he ((?:(?:Deputy|Prime|Foreign|Vice|Permanent|Under|Assistant|Trade|Finance|Defence|Defense|Interior|Health|Energy|Home|Justice) )?` +
		`(?:Minister|Ministers|Secretary|President|Ambassador|Ambassadors|Director|Commissioner|Chair|Chairman|Chairwoman|Governor|` +
		`Chancellor|Premier|Envoy|Consul|Ministry|Government|Governments|Embassy|Department|Delegation|Delegations|Committee|` +
		`Commission|Council|Cabinet|Presidency|Secretariat|Treasury|Parliament|Mission|Agency|Coalition|Summit|Treaty|Agreement|` +
		`Memorandum|Accord|Convention|Task Force|Working Group|Adviser|Advisor|Senior Director|Special Envoy|Spokesperson|Attorney General|` +
		`Coordinator|Representative|Special Representative|Prosecutor|Inspector|Board|Authority|Court|Tribunal|Assembly|Senate|Administration|` +
		`Bureau|Directorate|Panel|Parties|Principal|Leader|Speaker|Mayor|General|Admiral|Colonel|Commander|Chief of Staff|Head of Mission|` +
		`Chargé|Charge|High Commissioner|Consul General|Regulator|Central Bank|Prime Minister's Office|Interagency|Inter-Agency)(?:['’]s)?)\b`),
	group:  1,
	cased:  true,
	render: func(g string) []string { return []string{g, strings.ToLower(g)} },
	skip: func(doc string, m []int) bool {
		// A name or "of …" follows: part of a title or a name.
		rest := strings.TrimLeft(doc[m[3]:], " ")
		r, _ := utf8.DecodeRuneInString(rest)
		return unicode.IsUpper(r) || strings.HasPrefix(rest, "of ") || strings.HasPrefix(rest, "for ") ||
			strings.HasPrefix(rest, "on ") && unicode.IsUpper(firstRune(rest[3:]))
	},
}

func firstRune(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}

var months = strings.Fields("January February March April May June July August September October November December")

// dateRule writes a date day first or month first: "12 March 2026",
// "March 12, 2026".
var dateRule = rule{
	name:  "date",
	re:    regexp.MustCompile(`\b((?:[0-3]?\d (?:` + strings.Join(months, "|") + `)(?:,? \d{4})?)|(?:(?:` + strings.Join(months, "|") + `) [0-3]?\d(?:st|nd|rd|th)?(?:, \d{4})?))\b`),
	group: 1,
	render: func(g string) []string {
		f := strings.Fields(strings.ReplaceAll(g, ",", ""))
		var day, month, year string
		switch {
		case len(f) >= 2 && f[0][0] >= '0' && f[0][0] <= '9':
			day, month = f[0], f[1]
		case len(f) >= 2:
			month, day = f[0], strings.TrimRight(f[1], "stndrh")
		default:
			return nil
		}
		if len(f) == 3 {
			year = f[2]
		}
		th := "th"
		if d := strings.TrimLeft(day, "0"); !strings.HasPrefix(d, "1") || len(d) == 1 {
			switch d[len(d)-1] {
			case '1':
				th = "st"
			case '2':
				th = "nd"
			case '3':
				th = "rd"
			}
		}
		forms := []string{day + " " + month, month + " " + day, day + th + " " + month, month + " " + day + th}
		if year != "" {
			forms = []string{day + " " + month + " " + year, month + " " + day + ", " + year, day + th + " " + month + " " + year, month + " " + day + th + ", " + year}
		}
		out := []string{g}
		for _, f := range forms {
			if f != g && !slices.Equal(tokens(f), tokens(g)) {
				out = append(out, f)
			}
		}
		return out
	},
}

var (
	units = strings.Fields("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen")
	tens  = strings.Fields("twenty thirty forty fifty sixty seventy eighty ninety")
)

// numberWord writes n (2 to 99) in words: "forty-eight".
func numberWord(n int) string {
	if n < 20 {
		return units[n-1]
	}
	if n%10 == 0 {
		return tens[n/10-2]
	}
	return tens[n/10-2] + "-" + units[n%10-1]
}

// parseNumber reads a number from 2 to 99 in digits or words.
func parseNumber(s string) (int, bool) {
	s = strings.ToLower(s)
	for n := 2; n <= 99; n++ {
		if s == numberWord(n) || s == strconv.Itoa(n) {
			return n, true
		}
	}
	return 0, false
}

// numberRule writes a number from 2 to 99 before a plural noun in words
// or digits: "three ministers", "3 ministers", "forty-eight hours", "48
// hours". Not at the start of a sentence, where digits do not go.
var numberRule = func() rule {
	w := `(?:(?:` + strings.Join(tens, "|") + `)(?:-(?:` + strings.Join(units[:9], "|") + `))?|` + strings.Join(units[1:], "|") + `)`
	return rule{name: "number", re: regexp.MustCompile(`(?:^|[^\w.,:/$£€-])((?i:[1-9]\d?|` + w + `))(?:\s+[a-z]+s\b|-(?:minute|hour|day|week|month|year|mile|kilometre|kilometer|metre|meter|point|member|nation|party|page|seat|person|man|strong|vessel|ship)\b)`), group: 1,
		render: func(g string) []string {
			n, ok := parseNumber(g)
			if !ok {
				return nil
			}
			if g[0] >= '0' && g[0] <= '9' {
				return []string{g, numberWord(n)}
			}
			return []string{strings.ToLower(g), strconv.Itoa(n)}
		},
		skip: func(doc string, m []int) bool { return sentenceStart(doc, m[2]) }}
}()

// prefixes are the first parts of hyphenated words that are not
// compounds of two words ("co-operation", "non-governmental").
var prefixes = map[string]bool{}

func init() {
	for _, p := range strings.Fields(`co re non de pre post anti counter ex mid self vice semi multi sub inter intra
		pro un over under out up bi tri quasi pseudo neo micro macro mega mini ultra extra infra para`) {
		prefixes[p] = true
	}
}

// hyphenRule writes a compound of two words with its hyphen or without:
// "long-term", "long term"; "cross-border", "cross border".
var hyphenRule = rule{
	name:     "hyphen",
	re:       regexp.MustCompile(`\b[a-z]{3,}(-)[a-z]{3,}\b`),
	group:    1,
	variants: []string{"-", " "},
	words:    [][]string{{"-"}, {}},
	skip: func(doc string, m []int) bool {
		first := strings.ToLower(doc[m[0]:m[2]])
		_, isNumber := parseNumber(first)
		// A third part ("state-of-the-art") or a prefix: not two words.
		return prefixes[first] || isNumber || m[0] > 0 && doc[m[0]-1] == '-' || m[1] < len(doc) && doc[m[1]] == '-'
	},
}

// rules are tried in order; a place one rule took is not taken by another.
var rules = []rule{
	reportingRule,
	titleRule,
	dateRule,
	numberRule,
	hyphenRule,
	spellingRule,
	contextRule("the-two", `(?i)\b(the two|both) (?:sides|delegations|ministers|governments|leaders|countries|parties|teams|presidents|capitals)\b`, "the two", "both"),
	// Contractions: the same words, in a less formal register.
	wordRule("do-not", "do not", "don't"),
	wordRule("does-not", "does not", "doesn't"),
	wordRule("did-not", "did not", "didn't"),
	wordRule("is-not", "is not", "isn't"),
	wordRule("are-not", "are not", "aren't"),
	wordRule("was-not", "was not", "wasn't"),
	wordRule("were-not", "were not", "weren't"),
	wordRule("will-not", "will not", "won't"),
	wordRule("would-not", "would not", "wouldn't"),
	wordRule("could-not", "could not", "couldn't"),
	wordRule("should-not", "should not", "shouldn't"),
	wordRule("has-not", "has not", "hasn't"),
	wordRule("have-not", "have not", "haven't"),
	wordRule("had-not", "had not", "hadn't"),
	wordRule("cannot", "cannot", "can't"),
	// Latin abbreviations and their English.
	wordRule("eg", "e.g.", "for example", "for instance"),
	wordRule("ie", "i.e.", "that is"),
	// Connectives and prepositions of the same meaning.
	oneWay("regarding", []string{"regarding", "with regard to", "in relation to", "with respect to"}, "regarding", "concerning", "with regard to", "in relation to"),
	wordRule("in-order-to", "in order to", "so as to"),
	wordRule("because-of", "because of", "owing to"),
	wordRule("in-addition", "in addition,", "additionally,", "moreover,", "furthermore,"),
	wordRule("following", "following the", "after the"),
	oneWay("prior-to", []string{"prior to"}, "prior to", "before"),
	wordRule("as-well-as", "as well as", "along with"),
	oneWay("whether-or-not", []string{"whether or not"}, "whether or not", "whether"),
	wordRule("despite", "despite", "in spite of"),
	oneWay("although", []string{"although"}, "although", "though"),
	wordRule("at-present", "at present", "currently"),
	wordRule("at-this-stage", "at this stage", "at this point"),
	wordRule("asap", "as soon as possible", "at the earliest opportunity"),
	wordRule("coming-weeks", "in the coming weeks", "in the weeks ahead", "over the coming weeks"),
	wordRule("coming-days", "in the coming days", "in the days ahead", "over the coming days"),
	wordRule("next-day", "the following day", "the next day"),
	oneWay("a-number-of", []string{"a number of"}, "a number of", "several"),
	wordRule("consequently", "consequently,", "as a result,"),
	oneWay("subsequently", []string{"subsequently"}, "subsequently", "later"),
	oneWay("in-excess-of", []string{"in excess of"}, "in excess of", "more than"),
	oneWay("in-the-event-that", []string{"in the event that"}, "in the event that", "if"),
	oneWay("upon", []string{"upon"}, "upon", "on"),
	// Plain words for formal ones, in the same form.
	oneWay("assist", []string{"assist"}, "assist", "help"),
	oneWay("assisted", []string{"assisted"}, "assisted", "helped"),
	oneWay("assisting", []string{"assisting"}, "assisting", "helping"),
	oneWay("commence", []string{"commence"}, "commence", "begin", "start"),
	oneWay("commenced", []string{"commenced"}, "commenced", "began", "started"),
	oneWay("endeavour-to", []string{"endeavour to", "endeavor to"}, "endeavour to", "try to", "seek to"),
	oneWay("utilise", []string{"utilise", "utilize"}, "utilise", "use"),
	oneWay("numerous", []string{"numerous"}, "numerous", "many"),
	oneWay("sufficient", []string{"sufficient"}, "sufficient", "enough"),
	oneWay("requires", []string{"requires"}, "requires", "needs"),
	oneWay("terminate", []string{"terminate"}, "terminate", "end"),
	oneWay("additional", []string{"additional"}, "additional", "extra"),
	oneWay("purchased", []string{"purchased"}, "purchased", "bought"),
	wordRule("to-buy", "to buy", "to purchase"),
	wordRule("frequently", "frequently", "often"),
	wordRule("discussed", "discussed", "talked about"),
	wordRule("discuss", "discuss", "talk about"),
	wordRule("discussing", "discussing", "talking about"),
	wordRule("outlined", "outlined", "set out"),
	wordRule("outline", "outline", "set out"),
	wordRule("proposed", "proposed", "suggested"),
	wordRule("propose", "propose", "suggest"),
	wordRule("proposes", "proposes", "suggests"),
	contextRule("sought", `(?i)\b(sought|asked for) (?:a|an|the|his|her|their|its|our|assurances|clarification|information|details|access|confirmation|support|help|guidance|more|further|additional)\b`, "sought", "asked for"),
	wordRule("purpose-of", "the purpose of", "the aim of"),
	oneWay("majority-of", []string{"the majority of"}, "the majority of", "most of"),
	oneWay("in-advance-of", []string{"in advance of"}, "in advance of", "ahead of", "before"),
	contextRule("adjective-that", `(?i)\b(?:confident|sure|certain|aware|pleased|glad|hopeful|satisfied|convinced|disappointed) (that )(?:the|he|she|it|they|we|this|these|those|there|his|her|their|its|our|[A-Z])`, "that ", ""),
	wordRule("rapidly", "rapidly", "quickly"),
	wordRule("largely", "largely", "mostly"),
	wordRule("primarily", "primarily", "mainly", "chiefly"),
	wordRule("particularly", "particularly", "especially"),
	wordRule("nevertheless", "nevertheless", "nonetheless"),
	oneWay("nearly", []string{"nearly"}, "nearly", "almost"),
	oneWay("a-further", []string{"a further"}, "a further", "another"),
	wordRule("intends-to", "intends to", "plans to"),
	wordRule("intended-to", "intended to", "planned to"),
	wordRule("intend-to", "intend to", "plan to"),
	wordRule("seek-to", "seek to", "try to", "aim to"),
	wordRule("seeks-to", "seeks to", "tries to", "aims to"),
	wordRule("sought-to", "sought to", "tried to", "aimed to"),
	wordRule("wish-to", "wish to", "want to"),
	wordRule("wishes-to", "wishes to", "wants to"),
	wordRule("firstly", "first,", "firstly,"),
	wordRule("secondly", "second,", "secondly,"),
	wordRule("thirdly", "third,", "thirdly,"),
	contextRule("all-of-the", `(?i)\b(?:all|both) (of )(?:the|these|those|our|their|its|his|her)\b`, "of ", ""),
	issueRule,
	contextRule("current", `(?i)\b(current|present) (?:situation|position|arrangement|arrangements|level|levels|framework|system|regime|government|administration|round|proposal|draft|text|plan|status|crisis|conditions|circumstances|deadline|schedule|quota|quotas|mandate|ceasefire|talks)\b`, "current", "present"),
	amPMRule,
	moneyRule,
	thousandsRule,
	semicolonRule,
	contextRule("intro-comma", `(?:^|[.!?]\s+)(?:In|On|By|Since|Until|During|Throughout|From) (?:early |late |mid-)?(?:January|February|March|April|May|June|July|August|September|October|November|December|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|\d{4})(,) `, ",", ""),
	contextRule("intro-adverb-comma", `(?:^|[.!?]\s+)(?:Separately|Meanwhile|Later|Earlier|Afterwards|Subsequently|Initially|Privately|Publicly|Overall|Today|Yesterday|Tomorrow|Originally|Eventually|Currently|Since then|Last week|This week|Next week|Last month|This morning|This afternoon|Last night|In response|In turn|In practice|At the same time|For now|By contrast|In short)(,) `, ",", ""),
	wordRule("to-begin", "to begin", "to start"),
	wordRule("requested-that", "requested that", "asked that"),
	contextRule("requested", `(?i)\b(requested|asked for) (?:a|an|the|more|further|urgent|clarification|information|assistance|access|time|details|confirmation)\b`, "requested", "asked for"),
	contextRule("to-ensure-that", `(?i)\b(to ensure|to make sure) that\b`, "to ensure", "to make sure"),
	contextRule("informed", `(?i)\b(informed|told) (?:the|him|her|them|us|his|their|our)\b`, "informed", "told"),
	contextRule("told-that", `(?i)\b(?:told|informed|assured|reminded) (?:the|him|her|them|us|me|[A-Z]\w+)(?: \w+)? (that )`, "that ", ""),
	// A quantity before a number ("about" is not found: "a report about
	// 2026").
	contextRule("approximately", `(?i)\b(approximately|around|roughly|some)\s+\d`, "approximately", "about", "around", "roughly"),
	contextRule("more-than", `(?i)\b(more than)\s+\d`, "more than", "over"),
	// A percentage, written three ways.
	contextRule("percent", `\d((?:\s*%)|(?:\s+percent\b)|(?:\s+per cent\b))`, "%", " percent", " per cent"),
	// Titles, with or without the full stop.
	contextRule("mr", `\b(Mr\.?) [A-Z]`, "Mr.", "Mr"),
	contextRule("mrs", `\b(Mrs\.?) [A-Z]`, "Mrs.", "Mrs"),
	contextRule("ms", `\b(Ms\.?) [A-Z]`, "Ms.", "Ms"),
	contextRule("dr", `\b(Dr\.?) [A-Z]`, "Dr.", "Dr"),
	// A comma before a conjunction joining clauses, which may go: "…, and
	// the Minister said" (never added: "Norland and the Union").
	contextRule("comma-and", `\w(,) (?:and|but) (?:the|he|she|it|they|we|this|these|those|his|her|their|its|there|both|neither|no|all|each|[A-Z][a-z]+)\b`, ",", ""),
	serialComma,
	// Times of day: 14:30 or 14.30 (with "at", "from", "until" or "to"
	// before them, or a zone after).
	contextRule("time", `(?i)\b(?:at|from|until|to|by|before|after|between|and) [0-2]?\d([:.])[0-5]\d\b`, ":", "."),
}

// serialComma is the rule for the serial comma in a list of names:
// "Norland, Vesta and Ostmark" or "Norland, Vesta, and Ostmark". The
// first name must not be a word that opens a sentence or a clause
// ("However, Vesta and Ostmark agreed" is no list).
var serialComma = func() rule {
	r := contextRule("serial-comma", `\b([A-Z][\w'-]*(?: [A-Z][\w'-]*){0,2}), (?:[A-Z][\w'-]*(?: [A-Z][\w'-]*){0,2})(,?) (?:and|or) [A-Z]`, "", ",")
	r.group = 2
	opener := map[string]bool{}
	for _, w := range strings.Fields(`However Moreover Furthermore Additionally Finally First Second Third Meanwhile
		Nevertheless Therefore Thus Instead Separately Similarly Also Yesterday Today Tomorrow Afterwards Subsequently
		Consequently Accordingly Overall Again Otherwise Still Later Earlier Next Then Here There In On At For As If
		When While Although Because Since After Before During Under With Without By From To The This That These Those
		A An It He She They We I You His Her Their Our Its Yes No Indeed Nonetheless Specifically Notably Initially`) {
		opener[w] = true
	}
	r.skip = func(doc string, m []int) bool { return opener[strings.Fields(doc[m[0]:m[1]])[0]] }
	return r
}()

// pick is a render for rules whose group is one of a few fixed sets of
// variants: the set the group belongs to, the group's own form first.
func pick(sets ...[]string) func(string) []string {
	return func(g string) []string {
		for _, set := range sets {
			for i, v := range set {
				if v == g {
					return append([]string{v}, append(slices.Clone(set[:i]), set[i+1:]...)...)
				}
			}
		}
		return nil
	}
}

// issueRule: "the issue" or "the matter".
var issueRule = rule{name: "issue", re: regexp.MustCompile(`\b(?:[Tt]he|[Tt]his|[Tt]hat|[Tt]hese|[Tt]hose) (issue|issues|matter|matters)\b`), group: 1,
	render: pick([]string{"issue", "matter"}, []string{"issues", "matters"})}

// amPMRule writes the time of day's half in three styles: "9:15 a.m.",
// "9:15 am", "9:15 AM".
var amPMRule = rule{name: "am-pm", re: regexp.MustCompile(`\d ?(a\.m\.|am|AM|p\.m\.|pm|PM)(?:[^\w.]|\.\s|\.?$)`), group: 1, cased: true,
	render: pick([]string{"a.m.", "am", "AM"}, []string{"p.m.", "pm", "PM"})}

// moneyRule writes millions and billions of a currency in full or short:
// "$600 million", "$600m".
var moneyRule = rule{name: "money", re: regexp.MustCompile(`[$£€](\d[\d.,]*(?: million| billion|m|bn))\b`), group: 1,
	render: func(g string) []string {
		for _, p := range [][2]string{{" million", "m"}, {" billion", "bn"}} {
			if n, ok := strings.CutSuffix(g, p[0]); ok {
				return []string{g, n + p[1]}
			}
			if n, ok := strings.CutSuffix(g, p[1]); ok {
				return []string{g, n + p[0]}
			}
		}
		return nil
	}}

// semicolonRule joins two clauses with a semicolon or a dash: "…; the
// Minister…", "… — the Minister…".
var semicolonRule = rule{name: "semicolon", re: regexp.MustCompile(`\w(;) (?:the|he|she|it|they|we|this|these|those|there|both|neither|its|his|her|their)\b`), group: 1,
	variants: []string{";", " —"}, words: [][]string{{";"}, {}}}

// thousandsRule writes a number of thousands with its comma or without:
// "1,500", "1500" (never a year: only one written with the comma is
// found).
var thousandsRule = rule{name: "thousands", re: regexp.MustCompile(`(?:^|[^\d.,])([1-9],\d{3})\b(?:[^\d,.]|[.,]\D|[.,]?$)`), group: 1,
	render: func(g string) []string { return []string{g, strings.ReplaceAll(g, ",", "")} }}
