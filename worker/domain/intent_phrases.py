"""Phrase tables for reply intent, in the ten languages the corpus and the product read.

Data only: regular-expression fragments written against text folded by
:func:`worker.domain.intent_text.fold_keep_case` and matched case-insensitively (accents
removed, ``ß`` -> ``ss``, ``ø`` -> ``o``, curly quotes straightened, whitespace collapsed).
Write ``nao temos interesse``, not ``não temos interesse``. Each table is a tuple of
fragments; :func:`worker.domain.intent_text.compile_any` joins them into one pattern.
Languages: en, de, fr, es, it, nl, pt, sv, da, pl.
"""

from __future__ import annotations

#: Words just before a positive phrase that turn it round ("not interested", "kein Interesse").
NEGATION = (
    r"(\bnot|n't|\bno|\bnever|\bnicht|\bkein\w*|\bpas|\bne|\bn'|\bniet|\bgeen|\bnao|\bnon"
    r"|\binte|\bikke|\bnie|\bnada|\bnunca|\bwithout|\bnor)\W+(\w+\W+){0,2}$"
)

#: A short reply that is just a yes (or starts with one, followed by more).
YES_START = (
    r"^(yes|yeah|yep|yup|absolutely|definitely|ja|oui|si|sim|jawohl|zeker|certo|claro|yes please"
    r"|of course|oczywiscie)\s*([.!,-]|$)",
    r"^(sure|ok|okay|fine|deal|alright|klar|gerne|volontiers|vale|va bene|prima|oke|okej|dobrze)"
    r"\s*([.!]|$)",
)

#: The lead wants to move forward now: a call, demo, trial, quote, price, a slot, interest.
INTERESTED = (
    # en
    r"(i am|i'm|we are|we're|we'd be|we would be|i would be|i'd be|am|are|definitely|very) "
    r"(very |definitely |quite |really )?interested\b(?! in (nothing|no)\b)",
    r"interested in (a |the |your |receiving|learning|seeing|hearing|trying|getting|pricing"
    r"|more|knowing|finding)",
    r"(send|share|email|forward|shoot) (me|us|over)? ?(over )?(the |a |your |some |an )?"
    r"(detailed |full |rough )?(proposal|quote|quotation|pricing|price list|prices|case stud"
    r"|brochure|deck|info|information|details|costs|estimate|offer)",
    r"what (does|would|will|do) (it|this|that|you|the \w+) (cost|charge)",
    r"how much (is|does|would|will|do|for)",
    r"what('s| is| are) (the |your )?(price|pricing|cost|fee|rate)",
    r"(pricing|price|cost|costs|quote|ballpark|rates?)\b[^.!?]{0,60}\?",
    r"\b(free )?(trial|demo|demonstration|walkthrough|walk-through|pilot)\b",
    r"(call|ring|phone) me\b", r"give me a (call|ring|bell)",
    r"(set up|schedule|book|arrange|get|jump on|hop on|do|organise|organize) "
    r"(a |an |the )?(quick |short |brief |\d+[- ]?(minute|min)s? )?(call|meeting|chat|zoom"
    r"|teams call|video call|conversation)",
    r"(can|could|shall) we (get|have|do|set up|schedule|book|talk|chat|meet|speak|hop)",
    r"let'?s (talk|chat|meet|set|book|schedule|do it|pick|discuss|connect|get)\b"
    r"(?! (then|later|again|in|after|next|once|when|closer))",
    r"walk (me|us) through", r"(on|over) a (quick |short )?(call|zoom|video call)",
    r"\d+ minutes with you", r"you'?ve earned \d+ minutes",
    r"send (me |us )?(the |an |a )?(calendar )?invite",
    r"put (something|a time|a call) in the (diary|calendar)",
    r"(would|'d) (like|love) to (see|try|learn|know|hear|talk|discuss|receive|get|book|meet)",
    r"(tell|show) me more", r"keen to (have|see|try|learn|talk|chat)", r"sounds (good|great)",
    r"(does|do|will|can|would) (it|this|that|you|your \w+) (plug|integrate|work|sync|connect"
    r"|support|talk to|hook)",
    # de
    r"(hatten|haben|habe|hatte|waren|sind|bin) (grundsatzlich |durchaus |sehr )?interess",
    r"interessiert\b", r"\bangebot\b", r"was kostet", r"\bkosten\b[^.!?]{0,40}\?",
    r"ruf(en sie)? mich (gerne |bitte )?an", r"\btermin\b",
    r"(ein|einen|das|ihr) angebot\b[^.!?]{0,60}(zukommen|schicken|senden|erstellen|machen)",
    # fr
    r"m'interesse", r"nous interesse", r"interesse(e|s|es)?\b", r"\bdevis\b",
    r"proposition (tarifaire|commerciale)", r"\btarifs?\b", r"combien", r"rendez-vous",
    r"appelez-moi", r"un appel", r"(une|la) demo\b",
    # es
    r"(me|nos) interesa", r"interesad[oa]s?\b", r"\bllamada\b", r"\breunion\b",
    r"cotizacion", r"cuanto (cuesta|costaria|sale|vale)", r"\bprecios?\b", r"agendar",
    r"(envie|envien|enviar|mandar|mande|mandenme|envienme) (un |el |una )?(presupuesto|propuesta)",
    # it
    r"(mi|ci) interessa", r"interessat[oi]\b", r"preventivo", r"chiamar(e|mi)", r"chiamata",
    r"\bincontro\b", r"appuntamento", r"quanto costa", r"\bprezz[oi]\b",
    r"(inviare|inviarmi|inviarci|mandare|mandarmi|ricevere) (un'|una )?offerta",
    # nl
    r"\binteresse\b", r"geinteresseerd", r"(een|graag) offerte", r"\bafspraak\b", r"\bbel(len)? me\b",
    r"wat kost", r"\bprijs\b", r"\bprijzen\b",
    # pt
    r"tenho interesse", r"temos interesse", r"interessad[oa]s?\b",
    r"(receber|enviar|envie|mandar|mande) (uma |a )?proposta",
    r"(enviar|envie|mandar|mande|receber) (um |o )?orcamento", r"\breuniao\b",
    r"(marcar|agendar|fazer) (uma )?(call|ligacao)",
    r"\bligu?e(-me)?\b", r"quanto custa", r"\bpreco\b", r"demonstracao", r"integracao",
    # sv
    r"intresserad(e)?\b", r"\b(ett|et) (mote|mode)\b", r"\boffert\b", r"vad kostar",
    r"\bpriset\b", r"ring mig", r"ja garna",
    # da
    r"interesseret", r"hvad koster", r"ring til mig", r"ja tak",
    # pl
    r"zainteresowan", r"oferty? cenow", r"\bspotkanie\b", r"ile kosztuje", r"\bcennik",
    r"prosze o (ofert|kontakt telefoniczny|telefon|prezentacj)",
)

#: The lead names no one but says they are not the one to talk to.
WRONG_PERSON = (
    # en
    r"(not|isn't|is not)( really)? my (area|department|remit|field|thing|job|call)",
    r"not the (right|correct|best|appropriate|concerned|relevant) (person|contact|one|people"
    r"|guy|address)", r"wrong (person|contact|guy|address|department|one)",
    r"(have|got|reached) the wrong \w+", r"not my (department|area|remit|job|role|call"
    r"|decision|responsibility|field|place|wheelhouse|thing)",
    r"not (the|a) decision[- ]maker", r"not (the )?(concerned|responsible) person",
    r"i (don't|do not|dont) (handle|deal with|look after|make|do|manage|decide|buy|run|work)",
    r"i (only|just) (handle|do|fix|work|deal|answer|look after|run|manage)",
    r"i'?m (just|only) (the|a|an)\b", r"no longer (work|involved|with|at|look after|responsible"
    r"|in charge|handle)", r"\bi (have )?(left|retired)\b",
    r"moved (on )?to a (different|new|another) role",
    r"not with me", r"(nothing|no involvement) (to do )?with", r"have no involvement",
    r"(don't|do not) make (any |the )?decisions", r"(general|shared) (inbox|mailbox)",
    r"you want (my|our|the) [\w ]{1,20},? not me", r"\bnot me\b", r"can'?t help you",
    r"unable to assist", r"\bi'?m a contractor", r"not an employee",
    r"(don't|do not) run any (kind of )?business",
    r"(talk|speak|check) (to|with) (my|our|the) (concerned |relevant |right )?(boss|manager"
    r"|owner|owners|department|team|office)",
    # de
    r"bei mir (leider )?falsch", r"nicht (der|die) richtige", r"nicht zustandig",
    r"falsche[rn]? (person|ansprechpartner|adresse)", r"nicht mehr (im|bei|fur)",
    r"kummere mich nicht", r"bin (nur|lediglich) ",
    # fr
    r"pas (la|le) bon(ne)? (personne|interlocut|contact)", r"ne m'occupe pas",
    r"(pas|plus) moi qui", r"ne suis (pas|plus) (le|la|en charge|responsable)",
    r"ne travaille plus",
    # es
    r"no soy (la|el) (persona|responsable|indicad)", r"no soy (yo )?quien", r"equivocado de persona",
    r"persona equivocada", r"no (me encargo|llevo|trabajo)",
    # it
    r"non sono (la persona|io il|il responsabile|io la|io)", r"persona sbagliata",
    r"non mi occupo", r"mi occupo solo", r"non (e|rientra) (di|nella) mia competenza", r"non lavoro piu",
    # nl
    r"niet de (juiste|goede) persoon", r"met pensioen", r"niet meer betrokken",
    r"verkeerde persoon", r"ga (ik|ik niet) over", r"niet (mijn|de) (afdeling|persoon)",
    # pt
    r"nao sou (a|o) (pessoa|responsavel)", r"nao (trato|cuido)", r"pessoa errada",
    r"nao trabalho mais",
    # sv
    r"fel person", r"inte (ratt|den ratta) person", r"inte jag som",
    r"inte (min|mitt) (avdelning|ansvar|omrade|bord)",
    # da
    r"ikke den rette", r"ikke mig", r"forkert person", r"er kun vikar",
    r"ikke (min|mit) (afdeling|ansvar|omrade|bord)",
    # pl
    r"nie jestem (wlasciwa|odpowiednia|wlasciwym|odpowiednim) osob", r"nie zajmuje sie",
    r"zla osoba", r"nie odpowiadam za", r"to nie ja", r"to nie do mnie",
)

#: Words that introduce another person (to be read with a name, an address or a cc).
REFERRAL_CUE = (
    # en
    r"talk to", r"speak (to|with)", r"contact", r"reach out to", r"get in touch with",
    r"get hold of", r"\btry\b", r"\bask\b", r"direct (this|it|your \w+|these) to",
    r"(forward|pass|send)(ed)? (this|it) (on )?to", r"have a (chat|word) (to|with)",
    r"check with", r"coordinate with", r"the (right )?person (you want|to (talk|speak) to)",
    r"person you want", r"would be the (person|one|contact)", r"is the (person|one|contact)",
    r"\b(handles|runs|manages|looks after|owns|decides|oversees|heads)\b",
    r"makes (these|those|the|such|all) (calls|decisions)", r"in charge of",
    r"responsible for", r"takes care of", r"deals with", r"\bsorts\b", r"covering for me",
    r"you'?ll want", r"bother him", r"bother her", r"\bcc'?d?\b", r"\bcopy(ing)? in\b",
    r"\blooping in\b", r"\bloop(ed)? in\b", r"\badding\b", r"\badded\b", r"\bintroduc",
    # de
    r"wenden sie sich", r"sprechen sie mit", r"zustandig", r"kummert sich", r"ansprechpartner",
    r"melden sie sich bei", r"entscheidet", r"in kopie", r"\bin cc\b",
    # fr
    r"voyez (plutot )?avec", r"contactez", r"adressez-vous", r"s'occupe", r"\bgere\b",
    r"parlez", r"c'est \w+( \w+)? qui", r"en copie", r"\bresponsable\b",
    # es
    r"habl[ae] con", r"contacta", r"se encarga", r"\blleva\b", r"escribe a",
    r"dirigete a", r"en copia", r"te pongo",
    # it
    r"provi a sentire", r"\bsenta\b", r"contatti", r"scrivere a", r"si occupa",
    r"rivolgersi", r"rivolga", r"parli con", r"in copia", r"\bresponsabile\b",
    # nl
    r"contact (op )?(met|opnemen)", r"\bbeslist\b", r"gaat (hier|daar)?over", r"spreek (met|even)",
    r"\bregelt\b", r"in de cc", r"\bin cc\b",
    # pt
    r"fal(e|ar) com", r"contat", r"quem cuida", r"cuida disso", r"\bresponsavel\b",
    r"\bprocure\b", r"em copia", r"coloco",
    # sv
    r"prata med", r"kontakta", r"\bskoter\b", r"ansvarar", r"pa kopia", r"\bi kopia\b",
    r"lagger till",
    # da
    r"tal(e)? med", r"kontakt", r"\bprov\b", r"star for", r"tager sig af", r"ansvarlig",
    r"pa cc", r"saetter",
    # pl
    r"rozmawiac z", r"skontaktowac", r"zajmuje sie u nas", r"odpowiada za",
    r"prosze pisac do", r"w kopii", r"dodaje",
)

#: Words after which a capitalised word is a person ("Frau Schneider", "panem Nowakiem").
TITLES = (
    r"(mr|mrs|ms|miss|dr|herr|herrn|frau|mme|mlle|m|monsieur|madame|sr|sra|senor|senora"
    r"|dott|dottssa|sig|sigra|dhr|mevr|pani|pan|panem|pania|panu)\.?"
)

#: Puts the whole topic off until later.
NOT_NOW = (
    # en
    r"not (right )?now", r"not (at|for) (the|this) (moment|time)", r"not at this time",
    r"not a no", r"maybe (later|down the road|next)", r"down the (road|line|track)",
    r"(come|get|circle|check|reach|touch|follow) back", r"get back in touch",
    r"(ping|try|contact|email|mail|reach|call|ring|chase|hit) (me|us) (up )?(again|later|next"
    r"|in|after|on|from|once|when|closer)", r"reach out (again|next|in|after|on|from|once|closer)",
    r"revisit", r"(bad|poor|terrible|wrong) timing", r"(get|be|keep) in touch (again|in|after|next)",
    r"follow up (again |with me )?(in|after|next|once|from)", r"not the right (moment|time)",
    r"timing'?s? (is )?(bad|not right|off)",
    r"not before", r"(can't|cannot|can not) (look at|take on|consider|think about) anything",
    r"i'?ll (let you know|reach out|be in touch|get back to you|come back to you) (when|once)",
    r"(when|once) (the dust|things) (settles?|quieten|calm|slow)",
    r"give (me|us) a (buzz|shout|call|ring|bell) (in|after|next|from)",
    r"drop me a line (after|in|next|from|once)", r"(discuss|talk|speak|chat) then",
    r"revisit then", r"(connect|speak|talk) (again )?in \w+ (days|weeks|months)",
    r"(frozen|freeze) (on|until)", r"until (the|our|that|this|we)", r"(later|early) next year",
    r"in the new year", r"(another|a second) look",
    # de
    r"(nicht|kein) (jetzt|im moment|gerade|derzeit|aktuell)",
    r"(derzeit|aktuell|momentan|gerade) (nicht|kein)",
    r"melden sie sich (gern|gerne|bitte|doch)? ?(in|im|nach|ab|wieder|nochmal|noch einmal)",
    r"(kommen|melden) sie (dann )?(gerne |gern |bitte )?(wieder|wider|nochmal|noch einmal)",
    r"(kommen|melden) sie [^.!?]{0,40}\b(wieder|wider|nochmal|noch einmal)\b", r"\bspater\b",
    r"passt es (leider )?(gerade |jetzt )?nicht", r"\berst (im|in|ab|nach|wieder)\b",
    r"spateren zeitpunkt",
    # fr
    r"pas (pour le moment|maintenant|en ce moment|tout de suite)", r"revenez vers moi",
    r"recontact", r"plus tard", r"a partir du", r"apres les fetes", r"reparler",
    r"rappelez-moi", r"(ecrivez|revenez)-moi",
    # es
    r"ahora (mismo )?no", r"en este momento no", r"mas adelante", r"contacte(me|nos)",
    r"contacta(me|nos)", r"escribe(me|nos)", r"vuelva a (escribir|contactar)",
    r"vuelve a (escribir|contactar)", r"mas tarde", r"no es (un )?buen momento",
    # it
    r"non (e|e il) (il )?momento", r"piu avanti", r"ricontatt", r"risentiamoci",
    r"in questo momento non", r"al momento non", r"piu tardi",
    # nl
    r"komt (het )?(nu )?niet (goed )?uit", r"op dit moment niet",
    r"nog (eens|een keer) (mailen|contact|bellen|terug)", r"neem (later|dan|over)",
    r"wil ik er (best |graag )?naar kijken", r"nu (even )?niet", r"(nog eens|opnieuw) proberen",
    r"(neem|mail|bel) (later|dan)",
    # pt
    r"(no|neste) momento nao", r"nao e prioridade", r"volte a (contactar|entrar|falar|procurar)",
    r"me procur[ae]", r"mais (para|pra) frente", r"por enquanto nao", r"mais tarde",
    r"agora nao", r"(fale|fala) comigo (no|na|em|daqui|depois)",
    # sv
    r"inte (just )?nu", r"inte aktuellt (nu|just nu)", r"hor av (dig|er)", r"\bsenare\b",
    r"hora av oss", r"ta det (da|sen)",
    # da
    r"ikke (lige )?nu", r"vender tilbage", r"skriv (igen|tilbage)", r"\bsenere\b",
    r"kontakt (mig|os) igen",
    # pl
    r"na razie nie", r"moze pozniej", r"\bpozniej\b", r"odezwac sie", r"obecnie nie",
    r"wrocmy do tematu",
)

#: Declines without asking to stop mail.
NOT_INTERESTED = (
    # en
    r"not interested", r"no,? thanks?( you)?\b", r"no use for", r"(locked|tied) in(to)? a",
    r"(current|existing) (vendor|provider|supplier|system|solution)", r"\bnope\b", r"\bnah\b", r"hard pass",
    r"(we'll|we will|i'll|i will|going to|gonna) pass\b(?! (it|this|that|on|along|them))",
    r"pass,? thanks", r"not for (us|me)",
    r"not (a|the right|a good) fit", r"not (something|one) (we|for us|for me)",
    r"(don't|do not|dont|doesn't) need", r"no need", r"not in need", r"not required",
    r"(already|just) (use|using|have|signed|renewed|chose|went|built|got|work with|equipped)",
    r"went with", r"happy with (what|our|the|\w+)", r"we'?re (good|all set|sorted|covered|fine)",
    r"all good", r"overkill", r"in-house", r"hands are tied", r"not something we",
    r"isn't something", r"not (worth|a problem worth)", r"no budget",
    r"(don't|do not|dont) have (the |a |any )?budget", r"no interest", r"thanks anyway",
    r"not looking (for|to)", r"(doubt|don't think) we'?d (need|use)",
    # de
    r"kein (bedarf|interesse)", r"keinen bedarf", r"nicht interessiert", r"brauchen (wir|ich) nicht",
    r"haben (bereits|schon)", r"arbeiten bereits", r"(sehr )?zufrieden", r"nein,? danke",
    r"passt nicht",
    # fr
    r"pas interess", r"non,? merci", r"deja (equipe|un|une|avec)", r"ne correspond pas",
    r"pas besoin", r"pas pour nous", r"ne nous interesse pas",
    # es
    r"no (nos|me) interesa", r"no es algo que necesit", r"no (lo )?necesitamos",
    r"ya (tenemos|usamos|trabajamos)", r"no,? gracias", r"no es para nosotros",
    r"no tenemos presupuesto",
    # it
    r"non (ci|mi) interessa", r"non fa per noi", r"abbiamo (gia|appena firmato)",
    r"no,? grazie", r"non ne abbiamo bisogno", r"altro fornitore",
    # nl
    r"geen interesse", r"nee,? (dank|bedankt)", r"al een (oplossing|systeem|pakket)",
    r"niet nodig", r"niet voor ons", r"geen behoefte",
    # pt
    r"nao (temos|tenho) interesse", r"ja (usamos|temos|utilizamos|trabalhamos)",
    r"nao precisamos", r"nao e para nos", r"nao,? obrigad",
    # sv
    r"nej,? tack", r"har redan", r"inte intresserad", r"inget (behov|intresse)", r"inte for oss",
    # da
    r"nej,? tak", r"ikke noget for os", r"ikke (budget|brug for|interesseret)",
    r"har allerede",
    # pl
    r"nie (jestesmy|jestem) zainteresowan", r"korzystamy juz", r"nie potrzebujemy",
    r"nie planujemy", r"nie jest dla nas",
)

#: An explicit request to stop mail (beyond the classifier's shared unsubscribe table).
STOP_MAIL = (
    # en
    r"(remove|take|delete|drop|strike) (me|us|my|our)\b[\w ]{0,25} (from|off) (your|the|this|all)",
    r"take (me|us) off", r"(retirer|supprimer|enlever) (de|mon adresse)",
    r"me (retirer|desinscrire|supprimer)",
    r"stop (emailing|mailing|e-mailing|contacting|sending|writing|spamming)",
    r"(do not|don't|dont|never) (email|e-mail|contact|send|write to|mail)( me| us)?"
    r"( (any ?more|again|further|anything))",
    r"(do not|don't|dont) send (me |us )?(any )?(further|more|other) (e-?mails|mails|messages)",
    r"no (more|further) (e-?mails|mails|messages)", r"unsubscribe (me|us)", r"leave me alone",
    # fr
    r"ne (plus|pas) m'(ecrire|envoyer|contacter)", r"ne plus me (contacter|solliciter|relancer)",
    r"supprime[rz]? (mes|nos) (coordonnees|donnees)", r"retirez-moi", r"arretez (de|vos)",
    # es
    r"dej(en|a) de (enviar|escribir|mandar|contactar)", r"no me (escriban|contacten|envien) mas",
    r"(borren|eliminen) (mis|mi) (datos|correo|direccion)", r"sac(arme|quenme) de",
    # it
    r"non (mi )?contatt\w* piu", r"cancellare il mio (indirizzo|nominativo)",
    r"non (mi )?scriv\w* piu",
    # nl
    r"haal (mij|me|ons) [\w. ]{0,20}(van|uit)", r"verwijder (mij|me|ons)",
    r"geen (e-?mails|mails|berichten) meer",
    # pl
    r"prosze nie (wysylac|przysylac)", r"nie (wysylac|przysylac) (mi )?wiecej",
    r"usun(ac|cie) moj", r"wypisac",
    # de
    r"(aus|von) (dem|ihrem|ihrer|der) (verteiler|liste|mailingliste|e-?mail-?liste)",
    r"nicht mehr (kontaktieren|anschreiben|schreiben|anrufen)", r"loschen sie (mich|meine)",
    # pt
    r"nao me (enviem|contatem|contactem|mandem|escrevam)", r"parem de (enviar|mandar|escrever)",
    r"remov(a|am) (meu|o meu|-me)", r"tir(em|e)-me",
    # sv
    r"sluta (skicka|maila|mejla|kontakta)", r"ta bort mig", r"inga fler (mejl|mail)",
    # da
    r"stop med at (sende|skrive|maile)", r"fjern mig", r"ikke (flere|mere) (mails|e-mails)",
)
